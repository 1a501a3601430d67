package loop_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestHealthAndReady(t *testing.T) {
	ts := relaytest.Start(t)
	if code, hdr, body := ts.Get("/health"); code != 200 || strings.TrimSpace(body) != `{"status":"ok"}` || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/health: %d %q %q", code, body, hdr.Get("Content-Type"))
	}
	if code, _, body := ts.Get("/ready"); code != 200 || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Fatalf("/ready: %d %s", code, body)
	}
	if code, _, _ := ts.Get("/nope"); code != 404 {
		t.Fatalf("/nope: %d", code)
	}
	for _, p := range []string{"/echo", "/", "/wsrelay.js"} {
		if code, _, _ := ts.Get(p); code != 404 {
			t.Fatalf("%s when disabled: %d, want 404", p, code)
		}
	}
}

func TestStatsEndpoint(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_MAX_CLIENTS=777")
	a, b := ts.Dial("a"), ts.Dial("b")
	relaytest.Join(t, a, "r")
	relaytest.Join(t, b, "r")
	relaytest.Recv(t, a, "peer_joined")
	if err := a.Publish("r", "hello", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, b, "publish")
	time.Sleep(50 * time.Millisecond)
	st := ts.StatsJSON()
	for _, k := range []string{"uptime_seconds", "uptime", "connections", "rooms", "messages_in", "messages_out",
		"bytes_in", "bytes_out", "dropped", "rejected", "evicted", "goroutines", "heap_bytes", "max_clients"} {
		if _, ok := st[k]; !ok {
			t.Errorf("/stats lacks %q", k)
		}
	}
	if st["connections"].(float64) != 2 || st["rooms"].(float64) != 1 || st["max_clients"].(float64) != 777 {
		t.Errorf("/stats = %v", st)
	}
	if st["messages_in"].(float64) != 3 || st["messages_out"].(float64) < 1 {
		t.Errorf("messages_in %v messages_out %v", st["messages_in"], st["messages_out"])
	}
	if st["bytes_in"].(float64) == 0 || st["bytes_out"].(float64) == 0 || st["heap_bytes"].(float64) == 0 {
		t.Errorf("byte counters empty: %v", st)
	}
	if s, ok := st["uptime"].(string); !ok || s == "" {
		t.Errorf("uptime = %v", st["uptime"])
	}
}

func TestMetricsEndpoint(t *testing.T) {
	ts := relaytest.Start(t)
	a := ts.Dial("a")
	relaytest.Join(t, a, "r")
	code, hdr, body := ts.Get("/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	mustContain(t, body,
		"wsrelay_connections 1", "wsrelay_rooms 1", "wsrelay_connections_accepted_total 1",
		"wsrelay_messages_delivered_total", "wsrelay_bytes_received_total", "wsrelay_bytes_sent_total",
		`wsrelay_fanout_size_bucket{le="+Inf"}`, "wsrelay_fanout_size_count", "wsrelay_fanout_size_sum",
		"process_resident_memory_bytes", "go_goroutines",
	)
	for _, r := range []string{"full", "origin", "auth", "per_ip", "draining", "bad_request"} {
		mustContain(t, body, `wsrelay_connections_rejected_total{reason="`+r+`"}`)
	}
	for _, k := range []string{"direct", "publish", "broadcast", "control", "binary"} {
		mustContain(t, body, `wsrelay_messages_received_total{kind="`+k+`"}`)
	}
	for _, r := range []string{"queue_full", "rate_limited", "no_route"} {
		mustContain(t, body, `wsrelay_messages_dropped_total{reason="`+r+`"}`)
	}
	for _, r := range []string{"timeout", "replaced", "policy", "too_large"} {
		mustContain(t, body, `wsrelay_evictions_total{reason="`+r+`"}`)
	}
	for _, c := range []string{"bad_json", "unknown_type", "bad_request", "bad_frame", "peer_not_found", "not_member",
		"forbidden", "rate_limited", "too_many_rooms", "room_full", "type_not_allowed"} {
		mustContain(t, body, `wsrelay_errors_total{code="`+c+`"}`)
	}
}

func TestCORS(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_ALLOWED_ORIGINS=https://app.example.com")
	do := func(method, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.Base+"/stats", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	r := do("OPTIONS", "https://app.example.com")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		r.Header.Get("Access-Control-Allow-Methods") != "GET, OPTIONS" ||
		r.Header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		r.Header.Get("Vary") != "Origin" {
		t.Fatalf("preflight: %d %v", r.StatusCode, r.Header)
	}
	r = do("GET", "https://app.example.com")
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r.Header.Get("Vary") != "Origin" {
		t.Fatalf("GET allowed origin: %v", r.Header)
	}
	r = do("GET", "https://evil.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Vary") != "Origin" {
		t.Fatalf("GET foreign origin: %v", r.Header)
	}
	if r := do("OPTIONS", "https://evil.example"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v", r.StatusCode, r.Header)
	}

	any := relaytest.Start(t, "WSRELAY_ALLOWED_ORIGINS=*")
	req, _ := http.NewRequest("GET", any.Base+"/health", nil)
	req.Header.Set("Origin", "https://x.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("any origin: %v", resp.Header)
	}
}

func TestEcho(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_ECHO=true", "WSRELAY_MAX_MESSAGE_BYTES=200")
	rc := relaytest.RawDial(t, ts.Addr().String(), "/echo")
	for _, tc := range []struct {
		op byte
		p  []byte
	}{{1, []byte("hello")}, {1, nil}, {2, nil}, {2, []byte{0, 1, 2}}, {1, []byte("ünïcødé")}} {
		if err := rc.SendFrame(true, tc.op, tc.p); err != nil {
			t.Fatal(err)
		}
		op, p, err := rc.ReadFrame(2 * time.Second)
		if err != nil || op != tc.op || string(p) != string(tc.p) {
			t.Fatalf("echo of %d %q: %d %q %v", tc.op, tc.p, op, p, err)
		}
	}
	// Same limits: over MAX_MESSAGE_BYTES closes with 1009.
	if err := rc.SendFrame(true, 2, make([]byte, 201)); err != nil {
		t.Fatal(err)
	}
	if code := rc.ReadClose(t, 2*time.Second); code != 1009 {
		t.Fatalf("close %d", code)
	}
	// Echo is not a peer: no welcome is sent and the router stays empty.
	if n := ts.Router.Peers(); n != 0 {
		t.Fatalf("echo connection registered as a peer")
	}
	_ = client.ErrClosed
}
