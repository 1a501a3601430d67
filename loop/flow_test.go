package loop_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// burst is the flow-control scenario (docs/protocol.md section 9) at a size CI
// runs: one publisher writes messages as fast as it can into a room of
// members that read continuously and members that never read.
type burst struct {
	ts       *relaytest.Server
	dial     func(peer string) *client.Client
	rawDial  func(peer string) *relaytest.RawConn
	messages int
	size     int // bytes of padding per message
	readers  int
	idle     int // members that never read
}

func (b burst) run(t *testing.T) {
	pub := b.dial("pub")
	relaytest.Join(t, pub, "r")
	readers := make([]*client.Client, b.readers)
	for i := range readers {
		readers[i] = b.dial(fmt.Sprintf("reader%d", i))
		relaytest.Join(t, readers[i], "r")
	}
	idle := make([]*relaytest.RawConn, b.idle)
	for i := range idle {
		idle[i] = b.rawDial(fmt.Sprintf("idle%d", i))
		if tc, ok := idle[i].Conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
		}
		if err := idle[i].SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
			t.Fatal(err)
		}
	}
	relaytest.Eventually(t, 5*time.Second, "every member joined", func() bool {
		return len(b.ts.Router.Members("r")) == 1+b.readers+b.idle
	})

	// Every reader checks that it gets every message, in order.
	ctx := relaytest.Ctx(t, 3*time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, b.readers)
	for _, c := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m struct{ I int }
			for want := range b.messages {
				got, err := c.ReceiveType(ctx, "publish")
				if err != nil {
					errs <- fmt.Errorf("%s: message %d of %d: %w", c.PeerID(), want, b.messages, err)
					return
				}
				if err := json.Unmarshal(got.Data, &m); err != nil || m.I != want {
					errs <- fmt.Errorf("%s: got message %s, want number %d", c.PeerID(), got.Data[:min(len(got.Data), 20)], want)
					return
				}
			}
		}()
	}

	// The publisher asks an ack for its last message: it finishes once
	// everything it sent was routed.
	start := time.Now()
	relaytest.PublishBurst(t, pub, "r", b.messages, b.size)
	if m, err := pub.ReceiveType(ctx, "ack"); err != nil || string(m.ID) != `"last"` {
		if os.Getenv("WSRELAY_TEST_DUMP") != "" {
			buf := make([]byte, 4<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
		}
		pc := b.ts.Router.Lookup("pub")
		_, _, st := b.ts.Get("/stats")
		t.Fatalf("publisher got %s, %v; publisher paused %v (%s), %d paused, %d pauses, %s",
			m.Raw, err, pc != nil && pc.Paused(), b.ts.ReadState("pub"), b.ts.Stats.FlowPausedNow(), b.ts.Stats.FlowPauses(), st)
	}
	took := time.Since(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// The members that never read lost messages, each counted: when one
	// reads again it gets what was queued, then overflow notices that add
	// up to the rest.
	var dropped uint64
	for i, rc := range idle {
		publishes, lost := 0, uint64(0)
		for publishes+int(lost) < b.messages {
			op, p, err := rc.ReadFrame(10 * time.Second)
			if err != nil {
				state := "gone"
				if c := b.ts.Router.Lookup(fmt.Sprintf("idle%d", i)); c != nil {
					state = fmt.Sprintf("%d bytes in flight, %d queued, stalled %v", c.InFlight(), c.Queued(), c.Stalled())
				}
				t.Fatalf("idle member reading back: %v after %d publishes and %d dropped (%s)", err, publishes, lost, state)
			}
			var m struct {
				Type    string
				Dropped uint64
			}
			if op != frame.OpText || json.Unmarshal(p, &m) != nil {
				continue
			}
			switch m.Type {
			case "publish":
				publishes++
			case "overflow":
				lost += m.Dropped
			}
		}
		if lost == 0 {
			t.Errorf("an idle member got all %d messages: the test did not fill its queue", publishes)
		}
		dropped += lost
	}
	if got := b.ts.Stats.DroppedBy(0); got != dropped { // stats.DropQueueFull
		t.Errorf("queue_full drops = %d, the idle members were told of %d", got, dropped)
	}
	pauses := b.ts.Stats.FlowPauses()
	if pauses == 0 {
		t.Error("the publisher was never paused")
	}
	if n := b.ts.Stats.FlowPausedNow(); n != 0 {
		t.Errorf("%d connections still paused", n)
	}
	t.Logf("%d messages to %d readers (all delivered) and %d idle members (%d dropped) in %v; %d pauses",
		b.messages, b.readers, b.idle, dropped, took, pauses)
}

// burstReaders is 20, or 4 under the race detector, where the readers'
// JSON decoding would dominate the run.
func burstReaders() int {
	if raceEnabled {
		return 4
	}
	return 20
}

// TestFlowControlBurst: every member that reads gets every message of a
// burst, in order, while members that never read lose messages, counted,
// and the publisher finishes.
func TestFlowControlBurst(t *testing.T) {
	// The idle members never answer pings: however slow the run (race
	// detector), they must not time out before they read back.
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_STALL_TIMEOUT=500ms", "WSRELAY_CLIENT_TIMEOUT=10m")
	burst{
		ts:   ts,
		dial: ts.Dial,
		rawDial: func(peer string) *relaytest.RawConn {
			return relaytest.RawDial(t, ts.Addr().String(), "/ws?peer="+peer)
		},
		messages: 2000,
		size:     4 << 10, // 8 MB: more than loopback buffers take for one idle member
		readers:  burstReaders(),
		idle:     2,
	}.run(t)
}

// TestFlowControlBurstTLS: the same over wss://, where the paused
// publisher's bytes wait in the kernel under the TLS layer.
func TestFlowControlBurstTLS(t *testing.T) {
	ts := startTLSServer(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_STALL_TIMEOUT=500ms", "WSRELAY_CLIENT_TIMEOUT=10m")
	burst{
		ts:       ts.Server,
		dial:     ts.dialWSS,
		rawDial:  func(peer string) *relaytest.RawConn { return ts.rawTLSDial("/ws?peer=" + peer) },
		messages: 2000,
		size:     4 << 10, // 8 MB: more than loopback buffers take for one idle member
		readers:  burstReaders(),
		idle:     2,
	}.run(t)
}

// TestFlowControlPauseIsNotSilence: a publisher held back for longer than
// CLIENT_TIMEOUT is not timed out, although the server does not read it
// meanwhile (its pongs included), keeps receiving, and goes on once the
// member holding it stalls.
func TestFlowControlPauseIsNotSilence(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_PING_INTERVAL=300ms",
		"WSRELAY_CLIENT_TIMEOUT=1500ms", "WSRELAY_STALL_TIMEOUT=4s")
	pub := ts.Dial("pub")
	relaytest.Join(t, pub, "r")
	// A member that never reads but stays alive: it sends a ping now and
	// then, which needs no reading.
	idle := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer=idle")
	_ = idle.Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	if err := idle.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, pub, "peer_joined")
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if idle.SendFrame(true, frame.OpPing, nil) != nil {
					return
				}
			}
		}
	}()

	pings := pub.PingsReceived()
	start := time.Now()
	relaytest.PublishBurst(t, pub, "r", 2000, 4<<10)
	relaytest.AckLast(t, pub, time.Minute)
	if ts.Router.Lookup("pub") == nil {
		t.Fatal("the publisher was disconnected")
	}
	// While paused, the publisher kept receiving: the server's pings (every
	// 300 ms) reached it while its writes were blocked.
	if got, took := pub.PingsReceived()-pings, time.Since(start); got < 5 {
		t.Fatalf("the paused publisher got %d pings in %v", got, took)
	}
	_, _, body := ts.Get("/metrics")
	mustContain(t, body, "wsrelay_flow_pauses_total 1\n", "wsrelay_flow_paused_connections 0\n")
	var paused float64
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "wsrelay_flow_paused_seconds_total "); ok {
			_, _ = fmt.Sscan(v, &paused)
		}
	}
	if paused < 2 {
		t.Fatalf("paused %.2f s, want more than CLIENT_TIMEOUT (1.5 s)", paused)
	}
}
