package loop_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestRoomLimits(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_MAX_ROOMS_PER_PEER=2", "WSRELAY_MAX_ROOM_PEERS=2")
	a, b, c := ts.Dial("a"), ts.Dial("b"), ts.Dial("c")
	relaytest.Join(t, a, "r1")
	relaytest.Join(t, a, "r2")
	relaytest.Join(t, a, "r2") // joining again is not a new room
	if err := a.Join("r3", "j3"); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, a, "error"); m.Code != "too_many_rooms" || string(m.ID) != `"j3"` {
		t.Fatalf("third room = %s", m.Raw)
	}
	relaytest.Join(t, b, "r1")
	if err := c.Join("r1", nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "error"); m.Code != "room_full" {
		t.Fatalf("full room = %s", m.Raw)
	}
	// After leaving, there is room again.
	if err := a.Leave("r1", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "left")
	relaytest.Join(t, c, "r1")
	relaytest.Join(t, a, "r3")
}

func TestMessageSizeLimit(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_MAX_MESSAGE_BYTES=1000")
	a, b := ts.Dial("a"), ts.Dial("b")
	// Exactly MAX_MESSAGE_BYTES is accepted.
	msg := `{"type":"direct","to":"b","data":"` + strings.Repeat("x", 1000-len(`{"type":"direct","to":"b","data":""}`)) + `"}`
	if len(msg) != 1000 {
		t.Fatalf("test message is %d bytes", len(msg))
	}
	if err := a.SendText([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, b, "direct")
	// One byte more closes with 1009.
	if err := a.SendRaw(2, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	if code := relaytest.CloseCode(t, a, 5*time.Second); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
	if got := ts.Stats.EvictedBy(3); got != 1 { // stats.EvictTooLarge
		t.Errorf("too_large evictions = %d", got)
	}
	// A lying 64-bit length is refused before anything is buffered.
	rc := relaytest.RawDial(t, ts.Addr().String(), "/ws")
	_, _, _ = rc.ReadFrame(time.Second) // welcome
	if _, err := rc.Write([]byte{0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if code := rc.ReadClose(t, 5*time.Second); code != 1009 {
		t.Fatalf("lying length: close %d, want 1009", code)
	}
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	ts := relaytest.Start(t)
	rc := relaytest.RawDial(t, ts.Addr().String(), "/ws")
	_, _, _ = rc.ReadFrame(time.Second)
	if err := rc.SendFrame(true, frame.OpText, []byte{'"', 0xff, 0xfe, '"'}); err != nil {
		t.Fatal(err)
	}
	if code := rc.ReadClose(t, 5*time.Second); code != 1007 {
		t.Fatalf("close %d, want 1007", code)
	}
}

func TestRateLimit(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=10", "WSRELAY_RATE_BURST=10")
	a, b := ts.Dial("a"), ts.Dial("b")
	for i := range 40 {
		if err := a.Direct("b", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if m := relaytest.Recv(t, a, "error"); m.Code != "rate_limited" {
		t.Fatalf("got %s", m.Raw)
	}
	// At most one rate_limited error per second.
	relaytest.Quiet(t, a, 200*time.Millisecond)
	got := 0
	for {
		_, err := b.Receive(relaytest.Ctx(t, 200*time.Millisecond))
		if err != nil {
			break
		}
		got++
	}
	if got < 10 || got > 13 {
		t.Fatalf("b received %d of 40 messages, want about the burst of 10", got)
	}
	if d := ts.Stats.DroppedBy(1); d < 27 { // stats.DropRateLimited
		t.Fatalf("rate_limited drops = %d", d)
	}
	// Other peers are not limited by a's excess.
	if err := b.Direct("a", "still here", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "direct")
}

func TestRateLimitAbuseCloses1008(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	t.Parallel()
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=5", "WSRELAY_RATE_BURST=5")
	a, w := ts.Dial("a"), ts.Dial("w")
	relaytest.Join(t, a, "r")
	relaytest.Join(t, w, "r")
	done := make(chan int, 1)
	ctx := relaytest.Ctx(t, 15*time.Second)
	go func() {
		// CloseCode would fail the test from this goroutine: wait here
		// and let the test goroutine judge.
		for {
			_, err := a.Receive(ctx)
			if err == nil {
				continue
			}
			var ce *client.CloseError
			if errors.As(err, &ce) {
				done <- ce.Code
			} else {
				done <- 0
			}
			return
		}
	}()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case code := <-done:
			if code != 1008 {
				t.Fatalf("close %d, want 1008", code)
			}
			if el := time.Since(start); el < 9*time.Second || el > 13*time.Second {
				t.Fatalf("closed after %v, want about 10 s", el)
			}
			if ts.Stats.EvictedBy(2) != 1 { // stats.EvictPolicy
				t.Fatal("policy eviction not counted")
			}
			// A policy close ends the session (docs/protocol.md section 10):
			// the other members hear of it at once, nothing waits for a
			// resume.
			closed := time.Now()
			if m := relaytest.Recv(t, w, "peer_left"); m.Peer != "a" || time.Since(closed) > 2*time.Second {
				t.Fatalf("w got %s after %v", m.Raw, time.Since(closed))
			}
			if v := metricValue(t, ts, "wsrelay_sessions_detached"); v != 0 {
				t.Fatalf("%v sessions detached after a 1008", v)
			}
			return
		case <-tick.C:
			_ = a.Ping(nil) // 50 msg/s against a limit of 5
		}
	}
}

func TestMaxClients(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_MAX_CLIENTS=2")
	ts.Dial("a")
	ts.Dial("b")
	code, hdr := ts.DialStatus(nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "5" {
		t.Fatalf("third client: %d Retry-After %q", code, hdr.Get("Retry-After"))
	}
	if code, _, body := ts.Get("/ready"); code != 503 || !strings.Contains(body, `"full"`) {
		t.Fatalf("/ready at capacity: %d %s", code, body)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_MAX_CONNS_PER_IP=2")
	a := ts.Dial("a")
	ts.Dial("b")
	if code, _ := ts.DialStatus(nil); code != http.StatusTooManyRequests {
		t.Fatalf("third from same IP: %d, want 429", code)
	}
	_ = a.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		code, _ := ts.DialStatus(nil)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released after close: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOrigins(t *testing.T) {
	cases := []struct {
		name    string
		allowed string
		origin  string
		want    int
	}{
		{"no origin", "", "", 0},
		{"same origin", "", "http://HOST", 0},
		{"foreign origin", "", "http://evil.example", 403},
		{"same host other port", "", "http://127.0.0.1:1", 403},
		{"listed", "https://app.example.com,http://x.test", "http://x.test", 0},
		{"not listed", "https://app.example.com", "https://evil.example", 403},
		{"any", "*", "https://whatever.example", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := relaytest.Start(t, "WSRELAY_ALLOWED_ORIGINS="+tc.allowed)
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", strings.ReplaceAll(tc.origin, "HOST", ts.Addr().String()))
			}
			if code, _ := ts.DialStatus(&client.Options{Header: h}); code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
		})
	}
}
