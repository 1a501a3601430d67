package relaytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/cluster"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/loop"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// Server is a relay started by Start, with the parts it was wired from.
type Server struct {
	*loop.Server
	T       testing.TB
	Base    string // http://127.0.0.1:port (https:// with TLS)
	WS      string // ws://127.0.0.1:port/ws (wss:// with TLS)
	Metrics *vm.Set
	Stats   *stats.Stats
	Router  *router.Router
	Session *session.Handler
	API     *api.Handler     // nil unless WSRELAY_API_KEY is set
	Cluster *cluster.Cluster // nil unless WSRELAY_NATS_URL is set
	// Admin is http://127.0.0.1:port of the admin address (https:// with
	// TLS), empty unless WSRELAY_ADMIN_ADDR is set.
	Admin string
}

// Metric returns the value of the series name (with its labels, if any)
// on the server's metrics, and false when there is no such series.
func (s *Server) Metric(name string) (float64, bool) {
	var buf bytes.Buffer
	s.Metrics.WritePrometheus(&buf)
	for line := range strings.Lines(buf.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// Options changes how Start wires a server.
type Options struct {
	Logger           *slog.Logger  // nil: Logger(t)
	Version          string        // announced in the welcome; "" is "test"
	HandshakeTimeout time.Duration // 0: the server's default
	ChallengeTimeout time.Duration // key auth; 0: the server's default (10 s)
}

// Wire builds a server from cfg as main does, without starting it.
func Wire(cfg config.Config, opts Options) (*Server, error) {
	authn, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	roomTokens, err := auth.NewRoomTokens(cfg)
	if err != nil {
		return nil, err
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	set := vm.NewSet()
	st := stats.New(set, cfg.MaxClients)
	rt := router.New(router.Options{
		MaxRoomsPerPeer: cfg.MaxRoomsPerPeer,
		MaxRoomPeers:    cfg.MaxRoomPeers,
		AllowBroadcast:  cfg.AllowBroadcast,
	}, st)
	var cl *cluster.Cluster
	if cfg.NATSURL != "" {
		cl, err = cluster.New(cluster.Config{URL: cfg.NATSURL, NodeID: cfg.NodeID, Prefix: cfg.NATSPrefix}, rt, st, opts.Logger)
		if err != nil {
			return nil, err
		}
		rt.SetBackplane(cl)
		set.NewGauge("wsrelay_cluster_connected", func() float64 {
			if cl.Connected() {
				return 1
			}
			return 0
		})
	}
	sess := session.New(session.ConfigFrom(cfg, opts.Version), session.Deps{
		Router: rt, Stats: st, Metrics: set, Logger: opts.Logger, RoomTokens: roomTokens,
	})
	if cl != nil {
		sess.SetRemote(cl)
		cl.ServeSessions(sess)
	}
	var apiHandler *api.Handler
	var serverAPI http.Handler
	if cfg.APIKey != "" {
		apiHandler = api.New(api.Config{Key: cfg.APIKey, MaxBodyBytes: cfg.MaxMessageBytes},
			api.Deps{Router: rt, Metrics: set, Logger: opts.Logger})
		serverAPI = apiHandler
	}
	srv, err := loop.New(cfg, loop.Deps{
		Logger: opts.Logger, Metrics: set, Stats: st, Auth: authn,
		Session: sess, API: serverAPI, Cluster: cl, HandshakeTimeout: opts.HandshakeTimeout,
		ChallengeTimeout: opts.ChallengeTimeout,
	})
	if err != nil {
		return nil, err
	}
	return &Server{Server: srv, Metrics: set, Stats: st, Router: rt, Session: sess, API: apiHandler, Cluster: cl}, nil
}

// Start runs a relay on 127.0.0.1:0 with the defaults plus env (WSRELAY_*
// assignments) until the test ends.
func Start(t testing.TB, env ...string) *Server {
	t.Helper()
	return StartOpts(t, Options{}, env...)
}

// StartOpts is Start with Options.
func StartOpts(t testing.TB, opts Options, env ...string) *Server {
	t.Helper()
	cfg, err := config.Load(append([]string{"WSRELAY_ADDR=127.0.0.1:0"}, env...))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if opts.Logger == nil {
		opts.Logger = Logger(t)
	}
	s, err := Wire(cfg, opts)
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(s.Close)
	s.T = t
	addr := s.Addr().String()
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	s.Base = scheme + "://" + addr
	s.WS = "ws" + scheme[4:] + "://" + addr + "/ws"
	if a := s.AdminAddr(); a != nil {
		s.Admin = scheme + "://" + a.String()
	}
	return s
}

// Logger is a debug logger to stderr when WSRELAY_TEST_LOG is set, else nil
// (discard).
func Logger(testing.TB) *slog.Logger {
	if os.Getenv("WSRELAY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Dial connects peer (a random id when empty) and closes it when the test
// ends.
func (s *Server) Dial(peer string) *client.Client {
	s.T.Helper()
	c, err := client.Dial(Ctx(s.T, 5*time.Second), s.WS, &client.Options{Peer: peer})
	if err != nil {
		s.T.Fatalf("dial %q: %v", peer, err)
	}
	s.T.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// DialStatus returns the handshake status and headers of a refused dial (0
// when accepted).
func (s *Server) DialStatus(opts *client.Options) (int, http.Header) {
	s.T.Helper()
	c, err := client.Dial(Ctx(s.T, 5*time.Second), s.WS, opts)
	if err == nil {
		s.T.Cleanup(func() { _ = c.CloseNow() })
		return 0, nil
	}
	var he *client.HandshakeError
	if !errors.As(err, &he) {
		s.T.Fatalf("dial: want a handshake error, got %v", err)
	}
	return he.StatusCode, he.Header
}

// Get requests path and returns the status, headers and body.
func (s *Server) Get(path string) (int, http.Header, string) {
	s.T.Helper()
	resp, err := http.Get(s.Base + path)
	if err != nil {
		s.T.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// StatsJSON returns the decoded body of GET /stats.
func (s *Server) StatsJSON() map[string]any {
	s.T.Helper()
	_, _, body := s.Get("/stats")
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		s.T.Fatalf("stats: %v in %s", err, body)
	}
	return m
}
