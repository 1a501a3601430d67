package loop_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestShutdownDrainsAndCloses1001(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0")
	a := ts.Dial("a")
	relaytest.Join(t, a, "r")
	// b stops reading so that messages wait in its queue when shutdown begins.
	b := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer=b")
	if err := b.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "peer_joined")
	// 200 messages of 32 KiB (6.4 MB) are more than the socket buffers of a
	// receiver that does not read (about 4 MB on Linux) and the server's
	// write buffer hold, so the drain is still waiting for b
	// while the test looks at /ready.
	const n = 200
	pad := strings.Repeat("x", 32<<10)
	for i := range n {
		if err := a.Publish("r", map[string]any{"i": i, "pad": pad}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// a's messages are handled in order: once its join is answered, every
	// publish before it has been routed.
	relaytest.Join(t, a, "sync")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	// While draining: /ready is 503 draining and upgrades are refused with 503.
	deadline := time.Now().Add(2 * time.Second)
	for !ts.Draining() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if code, _, body := ts.Get("/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"draining"`) {
		t.Errorf("/ready while draining: %d %s", code, body)
	}
	if code, _ := ts.DialStatus(nil); code != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: %d, want 503", code)
	}

	// b gets every queued message, in order, then close 1001.
	got := 0
	for {
		op, p, err := b.ReadFrame(5 * time.Second)
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
			Data struct {
				I int `json:"i"`
			} `json:"data"`
		}
		_ = json.Unmarshal(p, &m)
		if m.Type == "publish" {
			if m.Data.I != got {
				t.Fatalf("b got message %d, want %d", m.Data.I, got)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("b got %d of %d queued messages before close", got, n)
	}
	if code := relaytest.CloseCode(t, a, 5*time.Second); code != 1001 {
		t.Fatalf("a closed with %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
