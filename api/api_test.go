package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

const testKey = "0123456789abcdef0123456789abcdef"

// newHandler returns an API over a router without peers: every call's
// refusals, and the answers that need no peer, are checked here; deliveries
// are checked through a real server in package loop.
func newHandler(t *testing.T) *Handler {
	t.Helper()
	st := stats.New(vm.NewSet(), 100)
	rt := router.New(router.Options{MaxRoomsPerPeer: 8}, st)
	return New(Config{Key: testKey, MaxBodyBytes: 256}, Deps{Router: rt, Metrics: vm.NewSet()})
}

// serve serves one request and returns the status and decoded JSON answer.
func serve(t *testing.T, h http.Handler, method, target, auth, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, target, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, target, ct)
	}
	return rec.Code, rec.Header(), m
}

func TestKey(t *testing.T) {
	h := newHandler(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer " + strings.Repeat("x", 32), 401},
		{"prefix of the key", "Bearer " + testKey[:31], 401},
		{"key and more", "Bearer " + testKey + "0", 401},
		{"other scheme", "Basic " + testKey, 401},
		{"no scheme", testKey, 401},
		{"right", "Bearer " + testKey, 200},
		{"scheme in lower case", "bearer " + testKey, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, m := serve(t, h, "POST", "/api/publish", tc.auth, `{"room":"r","data":1}`)
			if status != tc.want {
				t.Fatalf("status %d, want %d (%v)", status, tc.want, m)
			}
			if status == 401 {
				if m["error"] != "forbidden" || m["message"] == "" {
					t.Errorf("answer %v, want error forbidden with a message", m)
				}
				if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
				}
			}
		})
	}
	// Unknown calls are not revealed without the key.
	if status, _, _ := serve(t, h, "POST", "/api/nope", "", `{}`); status != 401 {
		t.Errorf("unknown call without key: %d, want 401", status)
	}
	if got := h.requestCount("other", 401); got != 7 {
		t.Errorf(`wsrelay_api_requests_total{call="other",status="401"} = %d, want 7`, got)
	}
}

func TestRefusals(t *testing.T) {
	h := newHandler(t)
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name, method, target, body string
		status                     int
		code                       string
	}{
		{"unknown call", "POST", "/api/shout", `{}`, 404, "unknown_type"},
		{"GET publish", "GET", "/api/publish", ``, 405, "bad_request"},
		{"POST rooms", "POST", "/api/rooms/r", `{}`, 405, "bad_request"},
		{"empty body", "POST", "/api/publish", ``, 400, "bad_json"},
		{"not JSON", "POST", "/api/publish", `room=r&data=1`, 400, "bad_json"},
		{"array", "POST", "/api/publish", `[{"room":"r","data":1}]`, 400, "bad_json"},
		{"truncated", "POST", "/api/publish", `{"room":"r","data":`, 400, "bad_json"},
		{"trailing garbage", "POST", "/api/publish", `{"room":"r","data":1} x`, 400, "bad_json"},
		{"invalid UTF-8", "POST", "/api/publish", "{\"room\":\"r\",\"data\":\"\xff\"}", 400, "bad_json"},
		{"too large", "POST", "/api/publish", `{"room":"r","data":"` + long + `"}`, 413, "bad_request"},
		{"publish without room", "POST", "/api/publish", `{"data":1}`, 400, "bad_request"},
		{"publish bad room", "POST", "/api/publish", `{"room":"a b","data":1}`, 400, "bad_request"},
		{"publish room not a string", "POST", "/api/publish", `{"room":7,"data":1}`, 400, "bad_request"},
		{"publish without data", "POST", "/api/publish", `{"room":"r"}`, 400, "bad_request"},
		{"direct without to", "POST", "/api/direct", `{"data":1}`, 400, "bad_request"},
		{"direct to the server", "POST", "/api/direct", `{"to":"@server","data":1}`, 400, "bad_request"},
		{"direct without data", "POST", "/api/direct", `{"to":"p"}`, 400, "bad_request"},
		{"direct to nobody", "POST", "/api/direct", `{"to":"p","data":1}`, 404, "peer_not_found"},
		{"broadcast without data", "POST", "/api/broadcast", `{"date":1}`, 400, "bad_request"},
		{"disconnect without peer", "POST", "/api/disconnect", `{}`, 400, "bad_request"},
		{"disconnect code too small", "POST", "/api/disconnect", `{"peer":"p","code":1000}`, 400, "bad_request"},
		{"disconnect code too big", "POST", "/api/disconnect", `{"peer":"p","code":5000}`, 400, "bad_request"},
		{"disconnect code not an integer", "POST", "/api/disconnect", `{"peer":"p","code":4000.5}`, 400, "bad_request"},
		{"disconnect reason too long", "POST", "/api/disconnect", `{"peer":"p","reason":"` + strings.Repeat("r", 124) + `"}`, 400, "bad_request"},
		{"disconnect nobody", "POST", "/api/disconnect", `{"peer":"p"}`, 404, "peer_not_found"},
		{"room empty", "GET", "/api/rooms/lobby", ``, 404, "not_member"},
		{"room name invalid", "GET", "/api/rooms/a%20b", ``, 400, "bad_request"},
		{"room name missing", "GET", "/api/rooms/", ``, 400, "bad_request"},
		{"room of two segments", "GET", "/api/rooms/a/b", ``, 404, "unknown_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, m := serve(t, h, tc.method, tc.target, "Bearer "+testKey, tc.body)
			if status != tc.status || m["error"] != tc.code {
				t.Fatalf("%d %v, want %d with error %q", status, m, tc.status, tc.code)
			}
			if msg, _ := m["message"].(string); msg == "" {
				t.Errorf("no message in %v", m)
			}
			if status == 405 && hdr.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
}

func TestAnswersWithoutPeers(t *testing.T) {
	h := newHandler(t)
	auth := "Bearer " + testKey
	for _, tc := range []struct {
		name, target, body string
	}{
		{"publish to an empty room", "/api/publish", `{"room":"r","data":{"x":1}}`},
		{"broadcast to nobody", "/api/broadcast", ` {"data":"hi","extra":[1,2]} `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, m := serve(t, h, "POST", tc.target, auth, tc.body)
			if status != 200 || m["recipients"] != 0.0 || len(m) != 1 {
				t.Fatalf("%d %v, want 200 {\"recipients\":0}", status, m)
			}
		})
	}
	if got := h.requestCount("publish", 200); got != 1 {
		t.Errorf(`wsrelay_api_requests_total{call="publish",status="200"} = %d, want 1`, got)
	}
}

// BenchmarkPublishCall is one API publish into an empty room: the cost of
// the call itself (key check, body, frame, answer) without the fan-out.
func BenchmarkPublishCall(b *testing.B) {
	st := stats.New(vm.NewSet(), 100)
	h := New(Config{Key: testKey, MaxBodyBytes: 65536},
		Deps{Router: router.New(router.Options{MaxRoomsPerPeer: 8}, st), Metrics: vm.NewSet()})
	body := `{"room":"lobby","data":{"t":1733212800000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/api/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
