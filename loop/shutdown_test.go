package loop

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

func TestShutdownDrainsAndCloses1001(t *testing.T) {
	ts := startServer(t, "WSRELAY_RATE_MSGS=0")
	a := ts.dial("a")
	join(t, a, "r")
	// b stops reading so that messages wait in its queue when shutdown begins.
	b := rawDial(t, ts.Addr().String(), "/ws?peer=b")
	if err := b.send(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	recv(t, a, "peer_joined")
	const n = 200
	for i := range n {
		if err := a.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	// While draining: /ready is 503 draining and upgrades are refused with 503.
	deadline := time.Now().Add(2 * time.Second)
	for !ts.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if code, _, body := ts.get("/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"draining"`) {
		t.Errorf("/ready while draining: %d %s", code, body)
	}
	if code, _ := ts.dialStatus(nil); code != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: %d, want 503", code)
	}

	// b gets every queued message, in order, then close 1001.
	got := 0
	for {
		op, p, err := b.read(5 * time.Second)
		if err != nil {
			t.Fatalf("b: %v after %d messages", err, got)
		}
		if op == frame.OpClose {
			if code := int(p[0])<<8 | int(p[1]); code != 1001 {
				t.Fatalf("b closed with %d, want 1001", code)
			}
			break
		}
		var m struct {
			Type string `json:"type"`
			Data int    `json:"data"`
		}
		_ = json.Unmarshal(p, &m)
		if m.Type == "publish" {
			if m.Data != got {
				t.Fatalf("b got message %d, want %d", m.Data, got)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("b got %d of %d queued messages before close", got, n)
	}
	if code := closeCode(t, a, 5*time.Second); code != 1001 {
		t.Fatalf("a closed with %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
