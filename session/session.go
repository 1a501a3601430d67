package session

import (
	"log/slog"
	"time"
	"unsafe"

	vm "github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// Config is the part of the server's configuration the protocol announces
// or enforces.
type Config struct {
	// Version is announced in the welcome as "wsrelay/<Version>".
	Version         string
	PingInterval    time.Duration
	ClientTimeout   time.Duration
	MaxMessageBytes int
	QueueSize       int
	// BinaryTypes limits binary content types; empty allows every type.
	BinaryTypes config.BinaryTypes
	// ResumeWindow is how long a detached session waits for a resume
	// (docs/protocol.md section 10); 0 turns resume off. The transport's
	// conn.Env must have resume on exactly when it is not 0.
	ResumeWindow time.Duration
	// BindPeer: a resume must authenticate as the session's peer id (auth
	// is on).
	BindPeer bool
}

// ConfigFrom takes the protocol's settings from the server configuration.
func ConfigFrom(cfg config.Config, version string) Config {
	return Config{
		Version:         version,
		PingInterval:    cfg.PingInterval,
		ClientTimeout:   cfg.ClientTimeout,
		MaxMessageBytes: cfg.MaxMessageBytes,
		QueueSize:       cfg.QueueSize,
		BinaryTypes:     cfg.BinaryTypes,
		ResumeWindow:    cfg.ResumeWindow,
		BindPeer:        cfg.Auth != "none",
	}
}

// Deps are the Handler's collaborators, made by the caller.
type Deps struct {
	Router *router.Router
	Stats  *stats.Stats
	// Metrics receives wsrelay_errors_total.
	Metrics *vm.Set
	// Logger gets bad input at debug level, rate-limited; nil discards.
	Logger *slog.Logger
	// RoomTokens checks the token of a join (auth.NewRoomTokens); nil
	// refuses every room token.
	RoomTokens *auth.RoomTokens
}

// Handler runs the protocol for every connection of one server. Safe for
// concurrent use.
type Handler struct {
	// Set at construction.
	cfg      Config
	server   string // "wsrelay/<version>"
	router   *router.Router
	stats    *stats.Stats
	log      *slog.Logger
	tokens   *auth.RoomTokens
	errors   [numCodes]*vm.Counter
	badInput rate.Sometimes
	resume   *registry // nil when resume is off
	remote   Remote    // the other nodes of a cluster; nil on a single node
}

// New returns a Handler and registers its error counters in deps.Metrics.
func New(cfg Config, deps Deps) *Handler {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	h := &Handler{
		cfg:      cfg,
		server:   "wsrelay/" + cfg.Version,
		router:   deps.Router,
		stats:    deps.Stats,
		log:      log,
		tokens:   deps.RoomTokens,
		errors:   errorCounters(deps.Metrics),
		badInput: rate.Sometimes{First: 10, Interval: time.Second},
	}
	if cfg.ResumeWindow > 0 {
		h.resume = newRegistry(cfg.ResumeWindow, deps.Router, deps.Metrics)
	}
	return h
}

// Close ends every detached session at once (server shutdown). Sessions
// with an open connection end with it.
func (h *Handler) Close() {
	if h.resume != nil {
		h.resume.stop()
	}
}

// Errors returns how many errors of code c were sent to peers.
func (h *Handler) Errors(c Code) uint64 { return h.errors[c].Get() }

// Session is the protocol state of one peer, made by Open or OpenEcho. With
// resume on it outlives its connection (Attach gives it the next one).
type Session struct {
	// Set at construction.
	h    *Handler
	c    *conn.Conn
	echo bool
	// base is the peer id without its :device suffix: a room token's sub
	// must equal it. rooms is what the credential lets the peer join
	// without a room token (docs/protocol.md section 11).
	base  string
	rooms auth.Rooms

	// Session resume; guarded by the Handler's registry lock.
	state  resumeState
	key    tokenKey
	secret [tokenSecretLen]byte
}

// Open makes the session of a relay connection whose credential proved id
// (c.ID is id.Peer). It does no I/O: the transport calls Greet once the
// socket may carry WebSocket frames and, in auth mode key, once the peer
// answered its challenge.
func (h *Handler) Open(c *conn.Conn, id auth.Identity) *Session {
	return &Session{h: h, c: c, base: id.Base, rooms: id.Rooms}
}

// OpenEcho makes the session of an /echo connection: every message comes
// back unchanged, under the same rate limit; nothing is routed and there is
// no welcome.
func (h *Handler) OpenEcho(c *conn.Conn) *Session {
	return &Session{h: h, c: c, echo: true}
}

// Greet registers the peer with the router and sends it hello (the
// transport's handshake response, or nil when that went out already)
// followed by the welcome. It is called once, before the peer's first
// message is read.
//
// The order matters. The welcome is queued before the peer is registered,
// so that it is the first frame even when a message for the peer is routed
// at once. The peer is registered before hello is written, so that a
// message the client sends as soon as it sees the handshake response (a
// join, say) finds it registered. And hello is the Conn's preface, written
// in the first Flush ahead of the welcome, or ahead of the close frame when
// a newer connection of the same peer id replaces this one before that
// Flush: it always comes first on the wire.
func (s *Session) Greet(hello []byte) {
	c := s.c
	if s.echo {
		if hello != nil {
			c.WriteControl(hello)
		}
		return
	}
	welcome := s.h.welcome(s)
	if hello != nil {
		c.Preface(hello)
	}
	flush := c.Greet(welcome)
	welcome.Release()
	s.h.router.Register(c)
	if flush {
		c.Flush(nil)
	}
}

// welcome builds the first frame a peer receives. It is the one place that
// decides what a peer is told on arrival.
// With resume on it carries the session's first token.
func (h *Handler) welcome(s *Session) *frame.Buf {
	b := frame.NewBuf(200 + len(s.c.ID)) // a typical welcome fits a 256-byte pooled buffer
	b.B = h.appendWelcome(b.B, s)
	if g := h.resume; g != nil {
		g.mu.Lock()
		token := g.issue(s)
		g.mu.Unlock()
		b.B = frame.AppendResumeFields(b.B, token, false, nil, 0)
	}
	b.Finish(frame.OpText)
	return b
}

// appendWelcome appends the welcome's version 1 fields.
func (h *Handler) appendWelcome(dst []byte, s *Session) []byte {
	return frame.AppendWelcome(dst, s.c.ID, h.server,
		h.cfg.PingInterval.Milliseconds(), h.cfg.ClientTimeout.Milliseconds(),
		int64(h.cfg.MaxMessageBytes), int64(h.cfg.QueueSize))
}

// Conn returns the connection of the session.
func (s *Session) Conn() *conn.Conn { return s.c }

// Scratch is the working memory of one read pass over a connection: the
// decoded envelope or binary header of the message at hand and the batch of
// recipients to flush. The transport keeps a pool of them; one Scratch serves
// one goroutine at a time and may move between connections between passes.
type Scratch struct {
	// Batch collects the recipients touched by the messages of the pass;
	// the transport flushes it at the end of the pass.
	Batch router.Batch
	env   frame.Envelope
	hdr   frame.Header
}

// OnMessage handles one complete data message (op is frame.OpText or
// frame.OpBinary). p is valid only during the call. It returns false when
// the session closed the connection (rate-limit abuse): the transport must
// stop reading it. It does not allocate for a routed message.
func (s *Session) OnMessage(op byte, p []byte, sc *Scratch) bool {
	switch {
	case s.echo:
		return s.echoBack(op, p, sc)
	case op == frame.OpBinary:
		return s.binary(p, sc)
	default:
		return s.text(p, sc)
	}
}

// OnClose is called once sock, a connection of the session, closed. With
// resume on, an end that is not for good (docs/protocol.md section 10: no close
// frame, a network error, the liveness timeout, a close code other than
// 1000 and 1001) detaches the session for RESUME_WINDOW, and the end of a
// socket that a resume took the session from does nothing. Otherwise the
// session ends: its queue is released, and the peer leaves its rooms (the
// other members are told through bt) and the registry.
func (s *Session) OnClose(sock conn.Socket, bt *router.Batch) {
	c := s.c
	if s.echo {
		c.Teardown()
		return
	}
	if g := s.h.resume; g != nil {
		switch c.Detach(sock) {
		case conn.Detached:
			g.onDetached(s)
			return
		case conn.NotAttached:
			return
		}
		g.onEnded(s)
	}
	c.Teardown()
	s.h.router.Remove(c, bt)
}

// bstr views b as a string for the duration of a call that does not keep it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// logBadInput logs a peer's bad input at debug level, at most a few times a
// second server-wide so that a hostile client cannot flood the log.
func (s *Session) logBadInput(msg string, args ...any) {
	s.h.badInput.Do(func() {
		s.h.log.Debug(msg, append([]any{"peer", s.c.ID, "remote", s.c.IP}, args...)...)
	})
}
