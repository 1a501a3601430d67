package loop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"golang.org/x/time/rate"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/cluster"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// defaultHandshakeTimeout bounds the HTTP phase of a connection (and the TLS
// handshake before it): a socket that has not completed a request within it
// is closed.
const defaultHandshakeTimeout = 10 * time.Second

// Server is one wsrelay node. Make it with New, then Start; Shutdown drains
// it. Safe for concurrent use.
type Server struct {
	// Set at construction.
	cfg            config.Config
	log            *slog.Logger
	version        string
	stats          *stats.Stats
	env            *conn.Env
	router         *router.Router
	drainer        *conn.Drainer
	exec           *executor
	sweeper        *sweeper
	closeGoingAway *frame.Buf       // shared close frame for shutdown
	cluster        *cluster.Cluster // nil unless WSRELAY_NATS_URL is set
	badInput       rate.Sometimes
	auth           auth.Authenticator
	tlsConfig      *tls.Config // nil: plain ws:// and http://
	handshake      time.Duration

	engine *nbhttp.Engine
	ln     net.Listener

	draining atomic.Bool
	accepted atomic.Uint64 // see Start: orders accept before the first read for the race detector
	stopOnce sync.Once
	conns    atomic.Int64 // open WebSocket connections (relay and echo)

	mu    sync.Mutex
	perIP map[string]int
	all   map[*wsConn]struct{}
}

// Options carries what New needs besides the configuration.
type Options struct {
	Logger  *slog.Logger // nil: discard
	Version string       // reported in welcome as wsrelay/<version>
	// HandshakeTimeout bounds the TLS handshake and the HTTP request of a
	// new socket; 0 means 10 s.
	HandshakeTimeout time.Duration
}

// New builds a server from cfg. It does not listen yet.
func New(cfg config.Config, opts Options) (*Server, error) {
	authn, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	tlsConf, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := stats.New(cfg.MaxClients)
	s := &Server{
		cfg:     cfg,
		log:     log,
		version: opts.Version,
		stats:   st,
		router: router.New(router.Options{
			MaxRoomsPerPeer: cfg.MaxRoomsPerPeer,
			MaxRoomPeers:    cfg.MaxRoomPeers,
			AllowBroadcast:  cfg.AllowBroadcast,
		}, st),
		badInput:  rate.Sometimes{First: 10, Interval: time.Second},
		auth:      authn,
		tlsConfig: tlsConf,
		handshake: cmp.Or(opts.HandshakeTimeout, defaultHandshakeTimeout),
		perIP:     make(map[string]int),
		all:       make(map[*wsConn]struct{}),
	}
	if s.version == "" {
		s.version = "dev"
	}
	if cfg.NATSURL != "" {
		cl, err := cluster.New(cluster.Config{URL: cfg.NATSURL, NodeID: cfg.NodeID, Prefix: cfg.NATSPrefix}, s.router, log)
		if err != nil {
			return nil, fmt.Errorf("loop: %w", err)
		}
		s.cluster = cl
		s.router.SetBackplane(cl)
		st.Set.NewGauge("wsrelay_cluster_connected", func() float64 {
			if cl.Connected() {
				return 1
			}
			return 0
		})
	}
	s.closeGoingAway = frame.NewBuf(32)
	s.closeGoingAway.B = append(s.closeGoingAway.B, 0x03, 0xE9) // 1001
	s.closeGoingAway.B = append(s.closeGoingAway.B, "server shutting down"...)
	s.closeGoingAway.Finish(frame.OpClose)
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() *stats.Stats { return s.stats }

// Router returns the server's router (for tests and diagnostics).
func (s *Server) Router() *router.Router { return s.router }

// Cluster returns the server's link to the other nodes, nil unless
// clustering is configured (for tests and diagnostics).
func (s *Server) Cluster() *cluster.Cluster { return s.cluster }

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Start binds the listener and starts the event loop, the sweeper and the
// drain workers. It fails at once, without hanging, when the address is
// taken.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("loop: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	if s.cluster != nil {
		// Never fails for an unreachable NATS: the node serves its local
		// peers and keeps trying in the background.
		if err := s.cluster.Start(); err != nil {
			_ = ln.Close()
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

	ncfg := nbhttp.Config{
		Name:    "wsrelay",
		Network: "tcp",
		// The listener is bound above so a busy port fails fast: nbio's own
		// Start can hang on it.
		Listen:          func(string, string) (net.Listener, error) { return ln, nil },
		NPoller:         workers,
		MaxLoad:         s.cfg.MaxClients + 4096,
		ReadLimit:       64 << 10, // HTTP requests; WebSocket frames are limited by frame.Reader
		MaxHTTPBodySize: 64 << 10,
		// nbio buffers what the kernel refuses without bound; our queue sits
		// in front, this is the last-resort kill.
		MaxWriteBufferSize: int(s.env.HighWater) + 4*s.cfg.MaxMessageBytes + (1 << 20),
		KeepaliveTime:      s.handshake,
		ServerExecutor:     s.exec.Submit,
		SupportServerOnly:  true,
		Handler:            s,
	}
	if s.tlsConfig != nil {
		ncfg.AddrsTLS = []string{ln.Addr().String()}
		ncfg.TLSConfig = s.tlsConfig
	} else {
		ncfg.Addrs = []string{ln.Addr().String()}
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
	s.engine.Engine.OnReadBufferAlloc(func(c *nbio.Conn) *[]byte {
		s.accepted.Load()
		return s.engine.Engine.PollerBufferPtr(c)
	})
	s.engine.Engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if w, ok := c.Session().(*wsConn); ok {
			w.Written(n)
		}
	})
	s.sweeper = newSweeper(s, s.cfg.PingInterval, s.cfg.ClientTimeout)
	if err := s.engine.Start(); err != nil {
		_ = ln.Close()
		s.sweeper.stop()
		s.exec.stop()
		s.drainer.Stop()
		if s.cluster != nil {
			s.cluster.Close()
		}
		return fmt.Errorf("loop: start event loop: %w", err)
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.tlsConfig != nil, "auth", s.cfg.Auth,
		"workers", workers, "max_clients", s.cfg.MaxClients)
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
