//go:build !race

package loop_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestRoutedMessageAllocs measures heap allocations per message through a
// real server: a publisher publishes to a room of recipients over raw
// sockets whose reads and writes allocate nothing, so every allocation
// counted is the server's (reading, decoding, routing, queueing, writing).
// A room of 10 is flushed by the reading poller, one of 40 by the drain
// workers (fanoutHandoff).
func TestRoutedMessageAllocs(t *testing.T) {
	for _, members := range []int{10, 40} {
		t.Run(fmt.Sprint("members=", members), func(t *testing.T) { routedMessageAllocs(t, members) })
	}
}

func routedMessageAllocs(t *testing.T, members int) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0")
	addr := ts.Addr().String()
	var rcv []*relaytest.RawConn
	for i := range members {
		rc := relaytest.RawDial(t, addr, fmt.Sprintf("/ws?peer=m%d", i))
		_, _, _ = rc.ReadFrame(time.Second)
		if err := rc.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
			t.Fatal(err)
		}
		rcv = append(rcv, rc)
	}
	pub := relaytest.RawDial(t, addr, "/ws?peer=pub")
	_, _, _ = pub.ReadFrame(time.Second)
	if err := pub.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Eventually(t, 5*time.Second, "every member joined", func() bool {
		return len(ts.Router.Members("r")) == members+1
	})
	msg := frame.AppendMaskedFrame(nil, true, frame.OpText, [4]byte{9, 8, 7, 6},
		[]byte(`{"type":"publish","room":"r","data":{"x":[1,2,3],"s":"hello"}}`))
	// Drain what the members receive in the background, allocation-free.
	stop := make(chan struct{})
	defer close(stop)
	for _, rc := range rcv {
		go func() {
			buf := make([]byte, 64<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, _ = rc.Read(buf)
			}
		}()
	}
	const n = 2000
	burst := make([]byte, 0, len(msg)*100)
	for range 100 {
		burst = append(burst, msg...)
	}
	send := func() {
		for range n / 100 {
			if _, err := pub.Write(burst); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	send() // warm the pools
	time.Sleep(100 * time.Millisecond)
	var m0, m1 runtime.MemStats
	out0 := ts.Stats.Snapshot().MessagesOut
	runtime.ReadMemStats(&m0)
	send()
	time.Sleep(200 * time.Millisecond)
	runtime.ReadMemStats(&m1)
	// The count means something only if the messages were routed: every
	// member got every one.
	relaytest.Eventually(t, 5*time.Second, "every message delivered", func() bool {
		return ts.Stats.Snapshot().MessagesOut-out0 == uint64(n*members)
	})
	per := float64(m1.Mallocs-m0.Mallocs) / n
	t.Logf("%.2f allocations per routed message (fan-out %d), including the test's deadline timers", per, members)
	if per > 1 {
		t.Fatalf("%.2f allocations per routed message", per)
	}
}
