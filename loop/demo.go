package loop

import (
	"io/fs"
	"net/http"
	"strconv"

	"github.com/wsrelay/wsrelay/web"
)

// demoFile maps a demo path (docs/protocol.md section 1) to its embedded file and
// content type.
func demoFile(path string) (name, ctype string, ok bool) {
	switch path {
	case "/":
		return "index.html", "text/html; charset=utf-8", true
	case "/wsrelay.js":
		return "wsrelay.js", "text/javascript; charset=utf-8", true
	}
	return "", "", false
}

// serveDemo answers GET / and GET /wsrelay.js with the embedded demo page
// and browser client when WSRELAY_DEMO is on, and 404 otherwise.
func (s *Server) serveDemo(w http.ResponseWriter, r *http.Request) {
	name, ctype, ok := demoFile(r.URL.Path)
	if !s.cfg.Demo || !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := fs.ReadFile(web.FS(), name)
	if err != nil {
		http.Error(w, "demo file missing from this build", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// An explicit length: without it the response is chunked, and the event
	// loop's HTTP server would end a HEAD answer with a chunk terminator.
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
