package loop

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/lesismal/nbio/nbhttp"

	"github.com/wsrelay/wsrelay/stats"
)

// apiPrefix starts the paths of the server API (package api).
const apiPrefix = "/api/"

// ServeHTTP routes every HTTP request. On the admin address: the endpoints
// of docs/protocol.md section 12. On the public one: CORS first, then those of
// section 1, without /metrics, /stats and the API when an admin address
// serves them.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.onAdmin(w) {
		s.serveAdmin(w, r)
		return
	}
	allowed := s.cors(w, r)
	if r.Method == http.MethodOptions {
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch r.URL.Path {
	case "/ws":
		s.serveWS(w, r, false)
	case "/echo":
		if !s.cfg.Echo {
			http.NotFound(w, r)
			return
		}
		s.serveWS(w, r, true)
	case "/health":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case "/ready":
		s.serveReady(w)
	case "/stats", "/metrics":
		if s.adminLn != nil {
			http.NotFound(w, r)
			return
		}
		s.serveAdmin(w, r)
	case "/", "/wsrelay.js":
		s.serveDemo(w, r) // 404 unless WSRELAY_DEMO
	default:
		if s.adminLn == nil && strings.HasPrefix(r.URL.Path, apiPrefix) {
			s.serveAdmin(w, r)
			return
		}
		http.NotFound(w, r)
	}
}

// serveAdmin answers the endpoints of the admin address: health and
// readiness, the counters and the server API.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch path := r.URL.Path; {
	case path == "/health":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case path == "/ready":
		s.serveReady(w)
	case path == "/stats":
		writeJSON(w, http.StatusOK, s.stats.Snapshot())
	case path == "/metrics":
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		stats.WritePrometheus(w, s.metrics)
	case strings.HasPrefix(path, apiPrefix) && s.api != nil:
		s.api.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// onAdmin reports whether the request came in through the admin listener:
// its connection's local address is that listener's (any local IP when the
// listener is bound to every interface).
func (s *Server) onAdmin(w http.ResponseWriter) bool {
	if s.adminLn == nil {
		return false
	}
	res, ok := w.(*nbhttp.Response)
	if !ok || res.Parser == nil || res.Parser.Conn == nil {
		return false
	}
	local, ok := res.Parser.Conn.LocalAddr().(*net.TCPAddr)
	admin, _ := s.adminLn.Addr().(*net.TCPAddr)
	if !ok || admin == nil || local.Port != admin.Port {
		return false
	}
	return admin.IP.IsUnspecified() || admin.IP.Equal(local.IP)
}

// serveReady answers /ready. With clustering on, "cluster" tells whether the
// node reaches NATS; a disconnected node stays ready, as it still serves its
// local peers (docs/protocol.md section 8).
func (s *Server) serveReady(w http.ResponseWriter) {
	body := map[string]string{"status": "ready"}
	if s.cluster != nil {
		body["cluster"] = "disconnected"
		if s.cluster.Connected() {
			body["cluster"] = "connected"
		}
	}
	status := http.StatusOK
	switch {
	case s.draining.Load():
		status, body["status"] = http.StatusServiceUnavailable, "draining"
	case s.conns.Load() >= int64(s.cfg.MaxClients):
		status, body["status"] = http.StatusServiceUnavailable, "full"
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// cors sets the CORS headers for an allowed Origin and reports whether the
// request's origin is allowed (a request without Origin is).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	ok, any := s.originAllowed(origin, r.Host)
	if !ok {
		return false
	}
	if any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	return true
}

// originAllowed applies WSRELAY_ALLOWED_ORIGINS to origin: listed, "*", or,
// with an empty list, the same host and port as the request's Host.
func (s *Server) originAllowed(origin, host string) (ok, any bool) {
	list := s.cfg.AllowedOrigins
	if len(list) == 0 {
		return sameOrigin(origin, host), false
	}
	for _, o := range list {
		if o == "*" {
			return true, true
		}
		if strings.EqualFold(o, origin) {
			return true, false
		}
	}
	return false, false
}

// sameOrigin reports whether origin names host (host[:port] from the Host
// header), default ports included.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(withPort(u.Host, u.Scheme), withPort(host, u.Scheme))
}

func withPort(host, scheme string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		return host
	}
	switch scheme {
	case "https", "wss":
		return host + ":443"
	default:
		return host + ":80"
	}
}
