package loop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"golang.org/x/time/rate"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/cluster"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// defaultHandshakeTimeout bounds the HTTP phase of a connection (and the TLS
// handshake before it): a socket that has not completed a request within it
// is closed.
const defaultHandshakeTimeout = 10 * time.Second

// Server is one wsrelay node's transport. Make it with New, then Start;
// Shutdown drains it. Safe for concurrent use.
type Server struct {
	// Set at construction.
	cfg            config.Config
	log            *slog.Logger
	metrics        *vm.Set
	stats          *stats.Stats
	session        *session.Handler
	api            http.Handler     // nil unless WSRELAY_API_KEY is set
	cluster        *cluster.Cluster // nil unless WSRELAY_NATS_URL is set
	auth           auth.Authenticator
	closeGoingAway *frame.Buf // shared close frame for shutdown
	badInput       rate.Sometimes
	tlsConfig      *tls.Config // nil: plain ws:// and http://
	handshake      time.Duration
	// challengeTimeout is how long a key-auth client has to answer.
	challengeTimeout time.Duration

	// Set by Start before the event loop runs; read-only afterwards.
	env     *conn.Env
	drainer *conn.Drainer
	exec    *executor
	sweeper *sweeper
	engine  *nbhttp.Engine
	ln      net.Listener
	adminLn net.Listener     // nil unless WSRELAY_ADMIN_ADDR is set
	gates   map[string]*gate // wrap ln and adminLn for nbio, by address
	yield   *pollerYield     // see onRead

	// Atomics, used by any goroutine.
	draining atomic.Bool
	accepted atomic.Uint64 // see Start: orders accept before the first read for the race detector
	stopOnce sync.Once
	conns    atomic.Int64 // open WebSocket connections (relay and echo)

	// Guarded by mu.
	mu    sync.Mutex
	perIP map[string]int
	all   map[*wsConn]struct{}
}

// Deps are the server's collaborators, made by the caller (main). The
// server uses them and serves Metrics on /metrics; of their lifecycles it
// owns only the cluster link's, which it starts in Start, once listening,
// and closes when it stops, after the event loop.
type Deps struct {
	Logger  *slog.Logger // nil: discard
	Metrics *vm.Set      // every wsrelay_* series, written on /metrics
	Stats   *stats.Stats
	Auth    auth.Authenticator
	Session *session.Handler
	// API serves the paths under /api/ (package api); nil turns the server
	// API off (404).
	API     http.Handler
	Cluster *cluster.Cluster // nil: a single node
	// HandshakeTimeout bounds the TLS handshake and the HTTP request of a
	// new socket; 0 means 10 s.
	HandshakeTimeout time.Duration
	// ChallengeTimeout is how long a client has to answer the key-auth
	// challenge; 0 means auth.ChallengeTimeout (10 s, docs/protocol.md section
	// 11). Tests shorten it.
	ChallengeTimeout time.Duration
}

// New builds the transport of a server from cfg and deps. It does not
// listen yet.
func New(cfg config.Config, deps Deps) (*Server, error) {
	tlsConf, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:              cfg,
		log:              log,
		metrics:          deps.Metrics,
		stats:            deps.Stats,
		session:          deps.Session,
		api:              deps.API,
		cluster:          deps.Cluster,
		auth:             deps.Auth,
		badInput:         rate.Sometimes{First: 10, Interval: time.Second},
		tlsConfig:        tlsConf,
		handshake:        cmp.Or(deps.HandshakeTimeout, defaultHandshakeTimeout),
		challengeTimeout: cmp.Or(deps.ChallengeTimeout, auth.ChallengeTimeout),
		perIP:            make(map[string]int),
		all:              make(map[*wsConn]struct{}),
	}
	s.closeGoingAway = frame.NewBuf(32)
	s.closeGoingAway.B = append(s.closeGoingAway.B, 0x03, 0xE9) // 1001
	s.closeGoingAway.B = append(s.closeGoingAway.B, "server shutting down"...)
	s.closeGoingAway.Finish(frame.OpClose)
	return s, nil
}

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// AdminAddr returns the admin address the server listens on, once started;
// nil without WSRELAY_ADMIN_ADDR.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Start binds the listeners and starts the event loop, the sweeper and the
// drain workers. It fails at once, without hanging, when an address is
// taken.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("loop: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	if s.cfg.AdminAddr != "" {
		s.adminLn, err = net.Listen("tcp", s.cfg.AdminAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("loop: listen on %s (WSRELAY_ADMIN_ADDR): %w", s.cfg.AdminAddr, err)
		}
	}
	closeListeners := func() {
		_ = ln.Close()
		if s.adminLn != nil {
			_ = s.adminLn.Close()
		}
	}
	if s.cluster != nil {
		// Never fails for an unreachable NATS: the node serves its local
		// peers and keeps trying in the background.
		if err := s.cluster.Start(); err != nil {
			closeListeners()
			return fmt.Errorf("loop: %w", err)
		}
	}
	workers := max(s.cfg.Workers, 1)
	s.drainer = conn.NewDrainer(workers)
	s.exec = newExecutor(max(2, workers))
	s.env = conn.NewEnv(s.cfg.QueueSize, s.stats, s.drainer)
	s.env.RateMsgs = s.cfg.RateMsgs
	s.env.RateBurst = s.cfg.RateBurst
	s.env.CompressMin = s.cfg.CompressionMinBytes
	s.env.HighWater = int64(max(256<<10, 2*s.cfg.MaxMessageBytes))
	s.env.Flow = s.cfg.FlowControl
	s.env.StallTimeout = s.cfg.StallTimeout
	if s.cfg.ResumeWindow > 0 {
		s.env.EnableResume()
	}

	// The listeners are bound above so a busy port fails fast: nbio's own
	// Start can hang on it. Both serve on the same pollers.
	addrs := []string{ln.Addr().String()}
	listeners := map[string]net.Listener{addrs[0]: ln}
	if s.adminLn != nil {
		a := s.adminLn.Addr().String()
		addrs = append(addrs, a)
		listeners[a] = s.adminLn
	}
	maxBody := 64 << 10
	if s.api != nil {
		// The API answers 413 up to this; beyond it nbio closes the socket.
		maxBody = max(maxBody, s.cfg.MaxMessageBytes+(64<<10))
	}
	ncfg := nbhttp.Config{
		Name:    "wsrelay",
		Network: "tcp",
		// A gate hands nbio each socket once no stale event can reach its
		// descriptor number.
		Listen: func(_, addr string) (net.Listener, error) {
			if g := s.gates[addr]; g != nil {
				return g, nil
			}
			return nil, fmt.Errorf("loop: no listener bound for %s", addr)
		},
		NPoller:         workers,
		MaxLoad:         s.cfg.MaxClients + 4096,
		ReadLimit:       64 << 10, // HTTP requests; WebSocket frames are limited by frame.Reader
		MaxHTTPBodySize: maxBody,
		// nbio buffers what the kernel refuses without bound; our queue sits
		// in front, this is the last-resort kill.
		MaxWriteBufferSize: int(s.env.HighWater) + 4*s.cfg.MaxMessageBytes + (1 << 20),
		KeepaliveTime:      s.handshake,
		ServerExecutor:     s.exec.Submit,
		// Edge-triggered, read by onRead: a connection paused by flow
		// control is simply not read (read.go).
		EpollMod:          nbio.EPOLLET,
		ReadBufferSize:    readBufSize,
		SupportServerOnly: true,
		Handler:           s,
	}
	if s.tlsConfig != nil {
		ncfg.AddrsTLS = addrs
		ncfg.TLSConfig = s.tlsConfig
	} else {
		ncfg.Addrs = addrs
	}
	s.gates = make(map[string]*gate, len(listeners))
	for a, l := range listeners {
		s.gates[a] = newGate(l)
	}
	s.engine = nbhttp.NewEngine(ncfg)
	// The accepting goroutine and the executor build a connection's state
	// and the poller reads it; epoll and the client's round trip order them,
	// but the race detector cannot see that. An atomic add after accept and
	// after each upgrade, and a load before each read, give it the edge (one
	// uncontended atomic load per read).
	s.engine.OnOpen(func(net.Conn) { s.accepted.Add(1) })
	s.engine.OnClose(func(_ net.Conn, err error) {
		// Upgraded connections have no read deadline: a read timeout is a
		// socket that did not complete an HTTP request in time.
		if errors.Is(err, nbio.ErrReadTimeout) {
			s.stats.HTTPTimeout()
		}
	})
	s.yield = newPollerYield(workers)
	s.engine.Engine.OnRead(s.onRead)
	s.engine.Engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if w, ok := c.Session().(*wsConn); ok {
			w.Written(n)
		}
	})
	s.sweeper = newSweeper(s, s.cfg.PingInterval, s.cfg.ClientTimeout)
	if s.env.Resume {
		s.env.AckLater = s.sweeper.ackLater
	}
	err = s.engine.Start()
	if err == nil {
		for _, g := range s.gates {
			if err = g.arm(s.engine.Engine); err != nil {
				s.engine.Stop()
				break
			}
		}
	}
	if err != nil {
		for _, g := range s.gates {
			_ = g.Close()
		}
		s.sweeper.stop()
		s.exec.stop()
		s.drainer.Stop()
		if s.cluster != nil {
			s.cluster.Close()
		}
		return fmt.Errorf("loop: start event loop: %w", err)
	}
	admin := ""
	if s.adminLn != nil {
		admin = s.adminLn.Addr().String()
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "admin_addr", admin, "tls", s.tlsConfig != nil,
		"auth", s.cfg.Auth, "api", s.api != nil, "workers", workers, "max_clients", s.cfg.MaxClients)
	return nil
}

// Shutdown drains the server: /ready turns 503, upgrades are refused, every
// connection gets its queued frames and then close 1001. It waits until every
// connection closed or ctx ends, then closes what is left and stops the
// event loop.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return errors.New("loop: already shut down")
	}
	s.log.Info("shutting down", "connections", s.conns.Load())
	for _, w := range s.snapshot() {
		w.Shutdown(s.closeGoingAway)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for s.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-tick.C:
		}
	}
	s.stop()
	return err
}

// Close stops the server at once, without draining.
func (s *Server) Close() {
	s.draining.Store(true)
	s.stop()
}

func (s *Server) stop() {
	s.stopOnce.Do(s.stopNow)
}

func (s *Server) stopNow() {
	for _, w := range s.snapshot() {
		w.Close()
	}
	if s.sweeper != nil {
		s.sweeper.stop()
	}
	if s.engine != nil {
		s.engine.Stop()
	}
	s.session.Close() // detached sessions end with the server
	if s.cluster != nil {
		s.cluster.Close()
	}
	if s.exec != nil {
		s.exec.stop()
	}
	if s.drainer != nil {
		s.drainer.Stop()
	}
}

func (s *Server) snapshot() []*wsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*wsConn, 0, len(s.all))
	for w := range s.all {
		list = append(list, w)
	}
	return list
}
