package loop_test

import (
	"encoding/json"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestSlowReaderIsBounded: without flow control (version 1 behaviour), a
// member that never reads loses messages (counted as queue_full) instead of
// growing the server or slowing anyone down, and learns how many it lost
// once it reads again. With flow control, TestFlowControlBurst.
func TestSlowReaderIsBounded(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_QUEUE_SIZE=64", "WSRELAY_RATE_MSGS=0", "WSRELAY_FLOW_CONTROL=false")
	pub, fast := ts.Dial("pub"), ts.Dial("fast")
	relaytest.Join(t, pub, "r")
	relaytest.Join(t, fast, "r")
	relaytest.Recv(t, pub, "peer_joined")

	slow := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer=slow")
	_ = slow.Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	if err := slow.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, pub, "peer_joined")
	relaytest.Recv(t, fast, "peer_joined")
	// slow now never reads: its kernel buffers fill, then nbio's in-flight
	// bytes reach the high-water mark, then its 64-frame queue overflows.

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const n = 10000
	payload := `"` + strings.Repeat("x", 1000) + `"`
	got := make(chan int)
	ctx := relaytest.Ctx(t, 20*time.Second)
	go func() {
		c := 0
		for c < n {
			if _, err := fast.ReceiveType(ctx, "publish"); err != nil {
				break
			}
			c++
		}
		got <- c
	}()
	start := time.Now()
	for i := range n {
		if err := pub.Publish("r", json.RawMessage(payload), nil); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if c := <-got; c != n {
		t.Fatalf("fast member got %d of %d messages", c, n)
	}
	el := time.Since(start)
	if sc := ts.Router.Lookup("slow"); sc != nil {
		t.Logf("slow: in flight %d, queued %d", sc.InFlight(), sc.Queued())
	}
	dropped := ts.Stats.DroppedBy(0) // stats.DropQueueFull
	if dropped == 0 {
		t.Fatal("nothing dropped for a peer that never reads")
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// 10 MB were sent to slow; it may hold its queue (64 frames), nbio's
	// in-flight buffer (high water 256 KiB plus one batch) and little else.
	if growth > 2<<20 {
		t.Fatalf("heap grew by %d bytes for one non-reading peer", growth)
	}
	t.Logf("%d messages to 3 members in %v; %d dropped for the slow one; heap growth %d KiB", n, el, dropped, growth>>10)

	// When slow reads again, it gets what was queued and then overflow with
	// the exact number dropped.
	var over struct {
		Type    string `json:"type"`
		Dropped uint64 `json:"dropped"`
	}
	publishes := 0
	for {
		op, p, err := slow.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("slow reading back: %v after %d publishes", err, publishes)
		}
		if op != frame.OpText {
			continue
		}
		_ = json.Unmarshal(p, &over)
		if over.Type == "overflow" {
			break
		}
		if over.Type == "publish" {
			publishes++
		}
	}
	if over.Dropped != dropped {
		t.Fatalf("overflow.dropped = %d, server counted %d", over.Dropped, dropped)
	}
	if uint64(publishes)+over.Dropped > n {
		t.Fatalf("slow got %d publishes and %d dropped of %d", publishes, over.Dropped, n)
	}
}
