package loop_test

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/web"
)

func TestDemoRoutes(t *testing.T) {
	off := relaytest.Start(t)
	on := relaytest.Start(t, "WSRELAY_DEMO=true")
	page, err := fs.ReadFile(web.FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	js, err := fs.ReadFile(web.FS(), "wsrelay.js")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		base   string
		method string
		path   string
		status int
		ctype  string
		body   []byte
		length int // Content-Length; 0: not checked
	}{
		{"off page", off.Base, "GET", "/", http.StatusNotFound, "", nil, 0},
		{"off client", off.Base, "GET", "/wsrelay.js", http.StatusNotFound, "", nil, 0},
		{"on page", on.Base, "GET", "/", http.StatusOK, "text/html; charset=utf-8", page, len(page)},
		{"on client", on.Base, "GET", "/wsrelay.js", http.StatusOK, "text/javascript; charset=utf-8", js, len(js)},
		// A HEAD answer has the GET's length and nothing after the headers.
		{"on head", on.Base, "HEAD", "/wsrelay.js", http.StatusOK, "text/javascript; charset=utf-8", []byte{}, len(js)},
		{"on post", on.Base, "POST", "/", http.StatusMethodNotAllowed, "", nil, 0},
		{"on other file", on.Base, "GET", "/index.html", http.StatusNotFound, "", nil, 0},
		{"on types not served", on.Base, "GET", "/wsrelay.d.ts", http.StatusNotFound, "", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
				t.Fatalf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ctype)
			}
			if tc.length != 0 && resp.Header.Get("Content-Length") != strconv.Itoa(tc.length) {
				t.Fatalf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), tc.length)
			}
			if tc.body != nil && !bytes.Equal(body, tc.body) {
				t.Fatalf("body differs from the embedded file (%d bytes, want %d)", len(body), len(tc.body))
			}
		})
	}
}

// The page must work offline and from the relay alone: everything it loads
// comes from its own origin.
func TestDemoPageHasNoExternalResources(t *testing.T) {
	page, err := fs.ReadFile(web.FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, bad := range []string{"http://", "https://", "//cdn", "<link "} {
		if strings.Contains(s, bad) {
			t.Errorf("demo page refers to %q: it must load nothing from elsewhere", bad)
		}
	}
	if !strings.Contains(s, "from './wsrelay.js'") {
		t.Error("demo page does not import the served client ./wsrelay.js")
	}
}
