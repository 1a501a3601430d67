package session

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// ErrResumeDenied is returned by Handler.Resume when the resume request
// authenticated as another peer than the session's: the transport answers
// 401.
var ErrResumeDenied = errors.New("session: resume authenticated as another peer")

// A resume token (docs/protocol.md section 10) is the URL-safe base64 of the
// issuing node's tag, a lookup key and a secret. The tag names the node of a
// cluster that holds the session (Remote); the key finds the session in a
// map there; the secret is compared in constant time, so the time a lookup
// takes tells nothing about the secret. Tokens are never logged.
const (
	tokenTagLen    = 4
	tokenKeyLen    = 8
	tokenSecretLen = 16
	tokenRawLen    = tokenTagLen + tokenKeyLen + tokenSecretLen
)

// tokenLen is the length of a token: 38 characters.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenRawLen)

// token is a decoded resume token.
type token struct {
	tag    uint32
	key    tokenKey
	secret [tokenSecretLen]byte
}

// parseToken decodes a resume token; false when it is not one.
func parseToken(s string) (t token, ok bool) {
	if len(s) != tokenLen {
		return t, false
	}
	var raw [tokenRawLen]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(s)); err != nil || n != len(raw) {
		return t, false
	}
	t.tag = binary.BigEndian.Uint32(raw[:tokenTagLen])
	t.key = tokenKey(binary.LittleEndian.Uint64(raw[tokenTagLen:]))
	copy(t.secret[:], raw[tokenTagLen+tokenKeyLen:])
	return t, true
}

// tokenKey is the lookup part of a token: 64 random bits.
type tokenKey uint64

// resumeState is where a session is in its life with resume on. Guarded by
// the registry's lock.
type resumeState uint8

const (
	stateAttached resumeState = iota // its connection is open
	stateDetached                    // waiting for a resume until its timer fires
	stateClaimed                     // a resume took its token and is attaching a socket
	stateEnded                       // closed for good or expired
)

// registry holds the resumable sessions of one Handler: the open ones and,
// for RESUME_WINDOW, the detached ones. Each detached session has one
// runtime timer (time.AfterFunc): no goroutine waits for it.
type registry struct {
	window time.Duration
	rt     *router.Router
	// tag is written into every token this node issues (Remote.Tag); set
	// before the first session opens.
	tag uint32

	resumed, expired, failed *vm.Counter

	mu      sync.Mutex
	byKey   map[tokenKey]*Session
	timers  map[*Session]*time.Timer // the detached sessions' windows
	moving  map[uint64]*handover     // sessions being handed over (remote.go)
	stopped bool
}

func newRegistry(window time.Duration, rt *router.Router, set *vm.Set) *registry {
	g := &registry{window: window, rt: rt, byKey: make(map[tokenKey]*Session), timers: make(map[*Session]*time.Timer), moving: make(map[uint64]*handover)}
	g.resumed = set.NewCounter("wsrelay_sessions_resumed_total")
	g.expired = set.NewCounter("wsrelay_sessions_expired_total")
	g.failed = set.NewCounter("wsrelay_sessions_resume_failed_total")
	set.NewGauge("wsrelay_sessions_detached", func() float64 { return float64(g.detached()) })
	return g
}

// detached counts the sessions waiting for a resume.
func (g *registry) detached() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.byKey {
		if s.state == stateDetached && s.c.Detached() {
			n++
		}
	}
	return n
}

// issue gives s a new token, invalidating its previous one, and marks it
// attached. Called under g.mu.
func (g *registry) issue(s *Session) string {
	delete(g.byKey, s.key)
	var raw [tokenRawLen]byte
	binary.BigEndian.PutUint32(raw[:tokenTagLen], g.tag)
	for {
		_, _ = rand.Read(raw[tokenTagLen:]) // never fails (crypto/rand)
		s.key = tokenKey(binary.LittleEndian.Uint64(raw[tokenTagLen:]))
		if g.byKey[s.key] == nil {
			break
		}
	}
	copy(s.secret[:], raw[tokenTagLen+tokenKeyLen:])
	g.byKey[s.key] = s
	s.state = stateAttached
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// onDetached starts the resume window of s, whose socket went away.
func (g *registry) onDetached(s *Session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.state != stateAttached || !s.c.Detached() || g.stopped {
		return // a resume claimed it meanwhile, or the server stops
	}
	s.state = stateDetached
	g.timers[s] = time.AfterFunc(g.window, func() { g.expire(s) })
}

// onEnded forgets s, whose session ended with its connection.
func (g *registry) onEnded(s *Session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endLocked(s)
}

func (g *registry) endLocked(s *Session) {
	if g.byKey[s.key] == s {
		delete(g.byKey, s.key)
	}
	g.stopTimer(s)
	s.state = stateEnded
}

// expire ends s when its window passed without a resume: the members of its
// rooms get peer_left, its queued frames are discarded and counted, and its
// peer id is free.
func (g *registry) expire(s *Session) {
	g.mu.Lock()
	if s.state != stateDetached {
		g.mu.Unlock()
		return
	}
	g.endLocked(s)
	g.mu.Unlock()
	if s.c.Expire() {
		var bt router.Batch
		g.rt.Remove(s.c, &bt)
		bt.Flush()
		g.expired.Inc()
	}
}

// claim takes the session of token t, issued by this node, for a resume:
// the token is used up. It returns nil when the token is unknown, used, or
// its session ended.
func (g *registry) claim(t token, peer string, bindPeer bool, received uint64) (*Session, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.byKey[t.key]
	if s == nil || t.tag != g.tag || subtle.ConstantTimeCompare(s.secret[:], t.secret[:]) != 1 {
		return nil, nil
	}
	if s.state != stateAttached && s.state != stateDetached {
		return nil, nil
	}
	if bindPeer && peer != s.c.ID {
		return nil, ErrResumeDenied
	}
	if received > s.c.Sent() {
		return nil, nil // the client claims more than was sent: not this session
	}
	delete(g.byKey, t.key)
	g.stopTimer(s) // if it fired already, expire finds the session claimed
	s.state = stateClaimed
	return s, nil
}

// detach takes the session s, just claimed, from its old socket if that is
// still open (close 4001 "resumed", no peer_left). It returns false when
// the old connection is closing for good: the session ends.
func (g *registry) detach(s *Session) bool {
	c := s.c
	if c.Detached() || c.Takeover(frame.CloseReplaced, "resumed") || c.Detached() {
		return true
	}
	g.onEnded(s)
	return false
}

// stopTimer stops the window of s, if it is detached. Called under g.mu.
func (g *registry) stopTimer(s *Session) {
	if t := g.timers[s]; t != nil {
		t.Stop()
		delete(g.timers, s)
	}
}

// stop ends every detached session at server shutdown, without waiting for
// their windows, and lets no new one start.
func (g *registry) stop() {
	g.mu.Lock()
	g.stopped = true
	var list []*Session
	for _, s := range g.byKey {
		if s.state == stateDetached {
			list = append(list, s)
		}
		g.endLocked(s)
	}
	g.mu.Unlock()
	for _, s := range list {
		if s.c.Expire() {
			var bt router.Batch
			g.rt.Remove(s.c, &bt)
			bt.Flush()
		}
	}
}

// Resume looks up the session of a resume request (GET
// /ws?resume=TOKEN&received=N) whose credential authenticated as id. It
// returns the session, taken from its old socket if that is still open
// (close 4001 "resumed", no peer_left), for the transport to call Attach
// with the new socket. When the token was issued by another node of a
// cluster, that node hands the session over (Remote): adopt makes the
// session's Conn here from what it carried (conn.Adopt), and the peer joins
// its rooms here without a word to their members. It returns nil, nil when
// the request gets an ordinary new session instead (resume off, token
// unknown, expired or used, received past what the session sent), and
// ErrResumeDenied when auth is on and id is not the session's peer id.
// Failures are counted in wsrelay_sessions_resume_failed_total.
func (h *Handler) Resume(tok string, received uint64, id auth.Identity, adopt func(peer string, h *conn.Handoff) *conn.Conn) (*Session, error) {
	g := h.resume
	if g == nil {
		return nil, nil
	}
	t, ok := parseToken(tok)
	var s *Session
	var err error
	switch {
	case !ok:
	case t.tag != g.tag && h.remote != nil:
		s, err = h.fetch(t.tag, tok, received, id, adopt)
		if s == nil {
			g.failed.Inc()
		}
		return s, err
	default:
		s, err = g.claim(t, id.Peer, h.cfg.BindPeer, received)
	}
	if s == nil {
		g.failed.Inc()
		return nil, err
	}
	if !g.detach(s) {
		g.failed.Inc()
		return nil, nil
	}
	return s, nil
}

// Attach gives the session that Resume returned its new socket and queues
// the welcome (same peer, a new token, "resumed":true, its rooms, "missed"),
// then every message after received that the server still holds, then live
// traffic. Nothing is written yet: the transport writes its upgrade
// response and then owes the Conn a Flush. It returns false when the
// session ended meanwhile; the transport then opens an ordinary new session.
func (s *Session) Attach(sock conn.Socket, received uint64) bool {
	g := s.h.resume
	rooms := s.h.router.RoomsOf(s.c)
	g.mu.Lock()
	token := g.issue(s)
	g.mu.Unlock()
	_, ok := s.c.Attach(sock, received, func(missed uint64) *frame.Buf {
		b := frame.NewBuf(320 + 140*len(rooms))
		b.B = s.h.appendWelcome(b.B, s)
		b.B = frame.AppendResumeFields(b.B, token, true, rooms, missed)
		b.Finish(frame.OpText)
		return b
	})
	if !ok {
		g.onEnded(s)
		g.failed.Inc()
		return false
	}
	g.resumed.Inc()
	return true
}

// Abandon returns a session that Resume returned, whose new socket could
// not be set up, to waiting detached for a resume until a window passes.
// Its token is used up: the client's next attempt starts a new session.
func (s *Session) Abandon() {
	g := s.h.resume
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.state != stateClaimed {
		return
	}
	g.issue(s) // a token nobody knows, so that the registry sees the session
	if !s.c.Detached() || g.stopped {
		g.endLocked(s)
		return
	}
	s.state = stateDetached
	g.timers[s] = time.AfterFunc(g.window, func() { g.expire(s) })
}
