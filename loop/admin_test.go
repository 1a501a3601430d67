package loop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/stats"
)

// startAdmin runs a relay with an admin address and the server API on.
func startAdmin(t *testing.T, env ...string) *relaytest.Server {
	t.Helper()
	return relaytest.Start(t, append([]string{
		"WSRELAY_ADMIN_ADDR=127.0.0.1:0", "WSRELAY_API_KEY=" + relaytest.APIKey,
	}, env...)...)
}

// TestAdminAddress: /metrics, /stats and the API leave the public address
// for the admin one; /health and /ready answer on both; the admin address
// serves nothing else.
func TestAdminAddress(t *testing.T) {
	ts := startAdmin(t)
	if ts.Admin == "" || ts.Admin == ts.Base {
		t.Fatalf("admin address %q, public %q", ts.Admin, ts.Base)
	}
	for _, tc := range []struct {
		path               string
		public, admin      int
		adminContentPrefix string
	}{
		{"/health", 200, 200, "application/json"},
		{"/ready", 200, 200, "application/json"},
		{"/metrics", 404, 200, "text/plain; version=0.0.4"},
		{"/stats", 404, 200, "application/json"},
		{"/api/rooms/lobby", 404, 401, "application/json"}, // no key: 401 only where the API is
		{"/ws", 400, 404, ""},                              // a plain GET is no upgrade; the admin address has no /ws
		{"/nope", 404, 404, ""},
	} {
		if code, _, _ := ts.Get(tc.path); code != tc.public {
			t.Errorf("public %s: %d, want %d", tc.path, code, tc.public)
		}
		code, hdr, body := ts.GetAdmin(tc.path)
		if code != tc.admin || !strings.HasPrefix(hdr.Get("Content-Type"), tc.adminContentPrefix) {
			t.Errorf("admin %s: %d %q, want %d %q", tc.path, code, hdr.Get("Content-Type"), tc.admin, tc.adminContentPrefix)
		}
		if tc.path == "/health" && strings.TrimSpace(body) != `{"status":"ok"}` {
			t.Errorf("admin /health: %s", body)
		}
	}
	// The public API path is not there even with the key.
	req, _ := http.NewRequest("POST", ts.Base+"/api/publish", strings.NewReader(`{"room":"r","data":1}`))
	req.Header.Set("Authorization", "Bearer "+relaytest.APIKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("public /api/publish with the key: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	// A WebSocket still works on the public address, and /stats on the
	// admin address sees it.
	ts.Dial("a")
	_, _, body := ts.GetAdmin("/stats")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil || st["connections"] != 1.0 {
		t.Fatalf("admin /stats: %v %s", err, body)
	}
}

// TestWithoutAdminAddress: with no admin address everything stays on the
// public one, the API included when a key is set.
func TestWithoutAdminAddress(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_API_KEY="+relaytest.APIKey)
	if ts.Admin != "" || ts.AdminAddr() != nil {
		t.Fatalf("admin address %q without WSRELAY_ADMIN_ADDR", ts.Admin)
	}
	for _, p := range []string{"/metrics", "/stats", "/health", "/ready"} {
		if code, _, _ := ts.Get(p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	if code, m := ts.Call("POST", "/api/publish", `{"room":"r","data":1}`); code != 200 || m["recipients"] != 0.0 {
		t.Fatalf("API on the public address: %d %v", code, m)
	}
	off := relaytest.Start(t, "WSRELAY_ADMIN_ADDR=127.0.0.1:0")
	if code, _, _ := off.GetAdmin("/api/publish"); code != 404 {
		t.Fatalf("/api/publish without WSRELAY_API_KEY: %d, want 404", code)
	}
}

// TestReadyOnBothAddresses: a draining node says so on both addresses. A
// member that stopped reading holds a full queue, so the drain lasts until
// Shutdown's deadline and /ready can be asked meanwhile.
func TestReadyOnBothAddresses(t *testing.T) {
	ts := startAdmin(t, "WSRELAY_RATE_MSGS=0")
	a := ts.Dial("a")
	relaytest.Join(t, a, "r")
	stuck := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer=stuck")
	if err := stuck.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "peer_joined")
	big := strings.Repeat("x", 32<<10)
	for range 600 { // 19 MB: more than the socket buffers and the queue hold
		if err := a.Publish("r", big, nil); err != nil {
			t.Fatal(err)
		}
	}
	relaytest.Eventually(t, 10*time.Second, "stuck's queue full", func() bool {
		return ts.Stats.DroppedBy(stats.DropQueueFull) > 0
	})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	relaytest.Eventually(t, 2*time.Second, "draining", ts.Draining)
	for name, get := range map[string]func(string) (int, http.Header, string){"public": ts.Get, "admin": ts.GetAdmin} {
		if code, _, body := get("/ready"); code != 503 || !strings.Contains(body, "draining") {
			t.Errorf("%s /ready while draining: %d %s", name, code, body)
		}
	}
	<-done // Shutdown's deadline: stuck never read
	// Closing stuck here also keeps it reachable until now: a net.Conn the
	// garbage collector takes closes its socket.
	stuck.Close()
}

// TestMetricsHelpAndType: every wsrelay family of a fully wired relay (the
// API's counters included) has a description and a type, and the whole
// exposition passes promtool when it is installed (CI checks the built
// binary in deploy/check.sh as well).
func TestMetricsHelpAndType(t *testing.T) {
	ts := startAdmin(t)
	a, b := ts.Dial("a"), ts.Dial("b")
	relaytest.Join(t, a, "r")
	relaytest.Join(t, b, "r")
	ts.Call("POST", "/api/publish", `{"room":"r","data":1}`)
	_, _, body := ts.GetAdmin("/metrics")

	helps, types := map[string]string{}, map[string]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, text, _ := strings.Cut(rest, " ")
			helps[name] = text
		} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			types[name] = typ
		}
	}
	for _, name := range []string{
		"wsrelay_connections", "wsrelay_errors_total", "wsrelay_fanout_size", "wsrelay_api_requests_total",
		"wsrelay_messages_delivered_total",
	} {
		if types[name] == "" {
			t.Errorf("no # TYPE for %s", name)
		}
	}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "wsrelay_") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suffix); types[base] == "histogram" {
				name = base
			}
		}
		if types[name] == "" || helps[name] == "" || strings.Contains(helps[name], "VictoriaMetrics") {
			t.Errorf("%s: # TYPE %q, # HELP %q; every wsrelay series needs both (stats/exposition.go)", name, types[name], helps[name])
		}
	}
	if !strings.Contains(body, `wsrelay_api_requests_total{call="publish",status="200"} 1`) {
		t.Errorf("the API call is not counted")
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}

// TestAPICalls: each call's success answer and what the peers receive.
func TestAPICalls(t *testing.T) {
	ts := startAdmin(t) // broadcast is off for peers: the API's goes out anyway
	a, b, c := ts.Dial("a"), ts.Dial("b"), ts.Dial("c")
	relaytest.Join(t, a, "game/1")
	relaytest.Join(t, b, "game/1")
	relaytest.Recv(t, a, "peer_joined")

	data := `{ "state" : [1, 2.50, "\u00e9"] }`
	code, m := ts.Call("POST", "/api/publish", `{"room":"game/1","data":`+data+`}`)
	if code != 200 || !reflect.DeepEqual(m, map[string]any{"recipients": 2.0}) {
		t.Fatalf("publish: %d %v", code, m)
	}
	for _, cl := range []*client.Client{a, b} {
		got := relaytest.Recv(t, cl, "publish")
		if got.From != "@server" || got.Room != "game/1" || string(got.Data) != data {
			t.Fatalf("%s got %s", cl.PeerID(), got.Raw)
		}
	}

	code, m = ts.Call("POST", "/api/direct", `{"to":"c","data":"your file is ready"}`)
	if code != 200 || !reflect.DeepEqual(m, map[string]any{"recipients": 1.0}) {
		t.Fatalf("direct: %d %v", code, m)
	}
	if got := relaytest.Recv(t, c, "direct"); got.From != "@server" || string(got.Data) != `"your file is ready"` {
		t.Fatalf("c got %s", got.Raw)
	}

	code, m = ts.Call("POST", "/api/broadcast", `{"data":{"maintenance":"10:00"}}`)
	if code != 200 || !reflect.DeepEqual(m, map[string]any{"recipients": 3.0}) {
		t.Fatalf("broadcast: %d %v", code, m)
	}
	for _, cl := range []*client.Client{a, b, c} {
		if got := relaytest.Recv(t, cl, "broadcast"); got.From != "@server" || string(got.Data) != `{"maintenance":"10:00"}` {
			t.Fatalf("%s got %s", cl.PeerID(), got.Raw)
		}
	}

	code, m = ts.Call("GET", "/api/rooms/game%2F1", "")
	if code != 200 || m["room"] != "game/1" {
		t.Fatalf("rooms: %d %v", code, m)
	}
	var peers []string
	for _, p := range m["peers"].([]any) {
		peers = append(peers, p.(string))
	}
	slices.Sort(peers)
	if !slices.Equal(peers, []string{"a", "b"}) {
		t.Fatalf("rooms: peers %v", peers)
	}

	// A direct just before the disconnect arrives before the close frame.
	ts.Call("POST", "/api/direct", `{"to":"b","data":"banned"}`)
	code, m = ts.Call("POST", "/api/disconnect", `{"peer":"b","code":4403,"reason":"banned"}`)
	if code != 200 || !reflect.DeepEqual(m, map[string]any{"peer": "b", "code": 4403.0, "reason": "banned"}) {
		t.Fatalf("disconnect: %d %v", code, m)
	}
	if got := relaytest.Recv(t, b, "direct"); string(got.Data) != `"banned"` {
		t.Fatalf("b got %s before the close", got.Raw)
	}
	if code := relaytest.CloseCode(t, b, 5*time.Second); code != 4403 {
		t.Fatalf("b closed with %d, want 4403", code)
	}
	if left := relaytest.Recv(t, a, "peer_left"); left.Peer != "b" {
		t.Fatalf("a got %s", left.Raw)
	}
	relaytest.Eventually(t, 5*time.Second, "b gone", func() bool {
		code, _ := ts.Call("POST", "/api/direct", `{"to":"b","data":1}`)
		return code == 404
	})

	// The defaults: code 4000, reason "disconnected".
	if code, m = ts.Call("POST", "/api/disconnect", `{"peer":"c"}`); code != 200 || m["code"] != 4000.0 || m["reason"] != "disconnected" {
		t.Fatalf("disconnect c: %d %v", code, m)
	}
	if code := relaytest.CloseCode(t, c, 5*time.Second); code != 4000 {
		t.Fatalf("c closed with %d, want 4000", code)
	}
}

// TestAPIRefusals: failure answers through a real listener.
func TestAPIRefusals(t *testing.T) {
	ts := startAdmin(t, "WSRELAY_MAX_MESSAGE_BYTES=1024")
	for _, tc := range []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"no key", "", "POST", "/api/publish", `{"room":"r","data":1}`, 401, "forbidden"},
		{"wrong key", strings.Repeat("k", 40), "POST", "/api/publish", `{"room":"r","data":1}`, 401, "forbidden"},
		{"malformed body", relaytest.APIKey, "POST", "/api/publish", `{"room":"r","data":`, 400, "bad_json"},
		{"missing field", relaytest.APIKey, "POST", "/api/direct", `{"data":1}`, 400, "bad_request"},
		{"unknown peer", relaytest.APIKey, "POST", "/api/direct", `{"to":"ghost","data":1}`, 404, "peer_not_found"},
		{"disconnect unknown peer", relaytest.APIKey, "POST", "/api/disconnect", `{"peer":"ghost"}`, 404, "peer_not_found"},
		{"empty room", relaytest.APIKey, "GET", "/api/rooms/void", ``, 404, "not_member"},
		{"unknown call", relaytest.APIKey, "POST", "/api/kick", `{}`, 404, "unknown_type"},
		{"wrong method", relaytest.APIKey, "PUT", "/api/publish", `{}`, 405, "bad_request"},
		{"body over MAX_MESSAGE_BYTES", relaytest.APIKey, "POST", "/api/publish",
			`{"room":"r","data":"` + strings.Repeat("x", 1024) + `"}`, 413, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := ts.CallKey(tc.key, tc.method, tc.path, tc.body)
			if code != tc.status || m["error"] != tc.code || m["message"] == "" {
				t.Fatalf("%d %v, want %d %s", code, m, tc.status, tc.code)
			}
		})
	}
	// A body of exactly MAX_MESSAGE_BYTES is accepted.
	body := `{"room":"r","data":"` + strings.Repeat("x", 1024-len(`{"room":"r","data":""}`)) + `"}`
	if code, m := ts.Call("POST", "/api/publish", body); len(body) != 1024 || code != 200 {
		t.Fatalf("body of %d bytes: %d %v", len(body), code, m)
	}
}

// TestAPILargeBody: a body near the default MAX_MESSAGE_BYTES (64 KiB)
// crosses several reads and is relayed whole.
func TestAPILargeBody(t *testing.T) {
	ts := startAdmin(t)
	a := ts.Dial("a")
	relaytest.Join(t, a, "r")
	data := `"` + strings.Repeat("y", 65000) + `"`
	if code, m := ts.Call("POST", "/api/publish", `{"room":"r","data":`+data+`}`); code != 200 || m["recipients"] != 1.0 {
		t.Fatalf("publish of 65 KB: %d %v", code, m)
	}
	if got := relaytest.Recv(t, a, "publish"); !bytes.Equal(got.Data, []byte(data)) {
		t.Fatalf("a got %d bytes of data, want %d", len(got.Data), len(data))
	}
}

// TestAPIDisconnectEndsSession: a disconnect ends the session (docs/protocol.md
// section 10), connected or detached: the members get peer_left at once and
// the resume token no longer works.
func TestAPIDisconnectEndsSession(t *testing.T) {
	env := []string{"WSRELAY_ADMIN_ADDR=127.0.0.1:0", "WSRELAY_API_KEY=" + relaytest.APIKey}
	t.Run("connected", func(t *testing.T) {
		ts, alice, bob := roomPair(t, env...)
		if code, m := ts.Call("POST", "/api/disconnect", `{"peer":"alice","code":4100}`); code != 200 {
			t.Fatalf("disconnect: %d %v", code, m)
		}
		if code := alice.RC.ReadClose(t, 5*time.Second); code != 4100 {
			t.Fatalf("alice closed with %d, want 4100", code)
		}
		if m := relaytest.Recv(t, bob, "peer_left"); m.Peer != "alice" {
			t.Fatalf("bob got %s", m.Raw)
		}
		again := &relaytest.Resumer{T: t, Server: ts}
		again.ResumeAs(alice.Token, alice.Received, "")
		if again.Welcome["resumed"] != false {
			t.Fatalf("a disconnected session was resumed: %v", again.Welcome)
		}
	})
	t.Run("detached", func(t *testing.T) {
		ts, alice, bob := roomPair(t, env...)
		alice.Cut()
		waitMetric(t, ts, "wsrelay_sessions_detached", 1)
		if code, m := ts.Call("POST", "/api/disconnect", `{"peer":"alice"}`); code != 200 {
			t.Fatalf("disconnect of a detached session: %d %v", code, m)
		}
		start := time.Now()
		if m := relaytest.Recv(t, bob, "peer_left"); m.Peer != "alice" || time.Since(start) > 3*time.Second {
			t.Fatalf("bob got %s after %v", m.Raw, time.Since(start))
		}
		waitMetric(t, ts, "wsrelay_sessions_detached", 0)
		again := &relaytest.Resumer{T: t, Server: ts}
		again.ResumeAs(alice.Token, alice.Received, "")
		if again.Welcome["resumed"] != false {
			t.Fatalf("a disconnected session was resumed: %v", again.Welcome)
		}
	})
}
