package loop

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"

	"strings"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// reject answers a refused upgrade with a plain HTTP status and counts it.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, reason stats.RejectReason, status int, msg string) {
	s.stats.Reject(reason)
	s.badInput.Do(func() {
		s.log.Debug("upgrade refused", "reason", reason.String(), "status", status, "remote", r.RemoteAddr)
	})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// rejectAuth refuses an upgrade whose credential is missing or invalid. The
// reason is logged at debug level, rate-limited; the credential never is.
func (s *Server) rejectAuth(w http.ResponseWriter, r *http.Request, err error) {
	s.stats.Reject(stats.RejectAuth)
	s.badInput.Do(func() {
		s.log.Debug("upgrade refused", "reason", stats.RejectAuth.String(), "status", http.StatusUnauthorized,
			"remote", r.RemoteAddr, "err", err.Error())
	})
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Connection", "close")
	h.Set("WWW-Authenticate", s.authScheme())
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte("authentication required\n"))
}

// authScheme names the Authorization scheme of the auth mode (RFC 9110
// section 11.6.1 asks a 401 to carry one).
func (s *Server) authScheme() string {
	if s.cfg.Auth == "telegram" {
		return "tma"
	}
	return `Bearer realm="wsrelay"`
}

// serveWS checks and upgrades a WebSocket request (docs/protocol.md section 1,
// upgrade refusals), then hands the socket to a wsConn.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, echo bool) {
	if s.draining.Load() {
		s.reject(w, r, stats.RejectDraining, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if ok, _ := s.originAllowed(origin, r.Host); !ok {
			s.reject(w, r, stats.RejectOrigin, http.StatusForbidden, "origin not allowed")
			return
		}
	}
	if r.Method != http.MethodGet ||
		!headerHas(r.Header, "Connection", "upgrade") ||
		!headerHas(r.Header, "Upgrade", "websocket") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" ||
		!validKey(r.Header.Get("Sec-WebSocket-Key")) {
		s.reject(w, r, stats.RejectBadRequest, http.StatusBadRequest, "not a WebSocket upgrade request")
		return
	}
	// /echo needs the same credential as /ws (in auth mode key, the same
	// challenge) but has no peer id: in auth mode none, a malformed ?peer=
	// does not matter there.
	ident, err := s.auth.Identify(r)
	switch {
	case errors.Is(err, auth.ErrBadKey):
		s.reject(w, r, stats.RejectBadRequest, http.StatusBadRequest, "malformed key")
		return
	case errors.Is(err, auth.ErrBadPeerID):
		if !echo || ident.Key != nil || !s.authNone() {
			s.reject(w, r, stats.RejectBadRequest, http.StatusBadRequest, "malformed peer id")
			return
		}
	case err != nil:
		s.rejectAuth(w, r, err)
		return
	}
	id := ident.Peer
	if echo {
		id = ""
	}
	ip := clientIP(r.RemoteAddr)
	if !s.reserve() {
		w.Header().Set("Retry-After", "5")
		s.reject(w, r, stats.RejectFull, http.StatusServiceUnavailable, "server full")
		return
	}
	if !s.reserveIP(ip) {
		s.conns.Add(-1)
		s.reject(w, r, stats.RejectPerIP, http.StatusTooManyRequests, "too many connections from this address")
		return
	}
	release := func() {
		s.conns.Add(-1)
		s.releaseIP(ip)
	}

	// A resume (docs/protocol.md section 10) takes its session over now, before
	// the upgrade: a refusal is still an HTTP answer. The token is a secret
	// and is never logged.
	var resumed *session.Session
	var received uint64
	// In auth mode key the peer id is only claimed until the challenge is
	// answered, so nothing is bound to it: a resume starts a new session.
	if q := r.URL.Query(); !echo && ident.Key == nil && q.Has("resume") {
		n, ok := frame.ParseCount([]byte(q.Get("received")))
		if !ok {
			n = ^uint64(0) // not a count: the resume fails, a new session starts
		}
		received = n
		// A session handed over by another node of a cluster gets its
		// Conn here; its socket, a wsConn, is a conn.Resumer.
		adopt := func(peer string, h *conn.Handoff) *conn.Conn {
			return conn.Adopt(s.env, peer, ip, true, h)
		}
		resumed, err = s.session.Resume(q.Get("resume"), n, ident, adopt)
		if err != nil {
			release()
			s.rejectAuth(w, r, err)
			return
		}
	}
	fail := func() {
		release()
		if resumed != nil {
			resumed.Abandon()
		}
	}

	hj, ok := w.(http.Hijacker)
	if !ok {
		fail()
		http.Error(w, "upgrade not supported", http.StatusInternalServerError)
		return
	}
	raw, _, err := hj.Hijack()
	if err != nil {
		fail()
		http.Error(w, "upgrade failed", http.StatusInternalServerError)
		return
	}
	hc, _ := raw.(*nbhttp.Conn)
	var nbc *nbio.Conn
	var tc *tls.Conn
	if hc != nil {
		switch c := hc.Conn.(type) {
		case *nbio.Conn:
			nbc = c
		case *tls.Conn:
			tc = c
			nbc, _ = c.Conn().(*nbio.Conn)
		}
	}
	if nbc == nil {
		fail()
		_ = raw.Close()
		return
	}

	// permessage-deflate (docs/protocol.md section 13): an offer that cannot be
	// accepted with no context takeover is declined, never refused.
	deflate := s.cfg.Compression && frame.NegotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"))
	wc := &wsConn{srv: s, hc: hc, nbc: nbc, tc: tc, ip: ip}
	wc.reader.MaxMessage = s.cfg.MaxMessageBytes
	wc.reader.Deflate = deflate
	if tc != nil {
		wc.tlsRecord = tlsRecordOverhead(tc.ConnectionState())
	}
	if resumed != nil {
		// Set before Attach, whose replay may flush at once: whether frames
		// go compressed is a property of the new socket.
		resumed.Conn().Deflate = deflate
	}
	switch {
	case resumed != nil && resumed.Attach(wc, received):
		wc.Conn = resumed.Conn()
		wc.sess = resumed
	case echo:
		wc.Conn = conn.New(s.env, id, ip, wc)
		wc.Conn.NoResume()
		wc.sess = s.session.OpenEcho(wc.Conn)
	default:
		resumed = nil
		wc.Conn = conn.New(s.env, id, ip, wc)
		wc.sess = s.session.Open(wc.Conn, ident)
	}
	wc.Conn.Deflate = deflate
	if ident.Key != nil {
		// Auth mode key: the peer is admitted once it answered the
		// challenge (keyauth.go); the sweeper enforces the time limit.
		// ident.Peer is only claimed until then: nothing may be bound to
		// it (a session to resume included) before answer admits it.
		wc.challenge = auth.NewChallenge(ident.Key)
		wc.authDeadline = s.env.Mono() + s.challengeTimeout
		wc.auth.Store(authPending)
	}
	wc.epoch = wc.Epoch()
	hc.Parser = nil
	nbc.SetSession(wc)
	_ = nbc.SetReadDeadline(time.Time{})

	s.mu.Lock()
	s.all[wc] = struct{}{}
	s.mu.Unlock()
	if wc.challenge == nil {
		s.stats.ConnOpened()
	}
	s.accepted.Add(1) // publishes wc to the poller (see Start)

	var resp [256]byte
	b := append(resp[:0], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAccept(b, r.Header.Get("Sec-WebSocket-Key"))
	if deflate {
		b = append(b, "\r\nSec-WebSocket-Extensions: "+frame.DeflateResponse...)
	}
	b = append(b, "\r\n\r\n"...)
	switch {
	case wc.challenge != nil:
		// The challenge goes out with the response, in the same write.
		b = appendChallenge(b, wc.challenge)
		wc.WriteControl(b)
	case resumed != nil:
		// The response, the welcome, the replay, what was queued meanwhile.
		wc.Preface(b)
		wc.Flush(nil)
	default:
		wc.sess.Greet(b)
	}
	s.sweeper.add(wc)
}

// authNone reports whether the auth mode is none: the only one where the
// client names its peer id.
func (s *Server) authNone() bool { return s.cfg.Auth == "" || s.cfg.Auth == "none" }

// reserve takes one connection slot under MAX_CLIENTS.
func (s *Server) reserve() bool {
	for {
		n := s.conns.Load()
		if n >= int64(s.cfg.MaxClients) {
			return false
		}
		if s.conns.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// reserveIP takes one slot of ip under MAX_CONNS_PER_IP.
func (s *Server) reserveIP(ip string) bool {
	if s.cfg.MaxConnsPerIP <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) releaseIP(ip string) {
	if s.cfg.MaxConnsPerIP <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.perIP[ip]; n <= 1 {
		delete(s.perIP, ip)
	} else {
		s.perIP[ip] = n - 1
	}
}

func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// validKey checks a Sec-WebSocket-Key: base64 of 16 bytes.
func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

func appendAccept(dst []byte, key string) []byte {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(wsGUID))
	var sum [sha1.Size]byte
	return base64.StdEncoding.AppendEncode(dst, h.Sum(sum[:0]))
}

// headerHas reports whether a comma-separated header contains token,
// case-insensitively.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
