package client_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/stats"
)

// gate is a TCP proxy to a relay that can cut its connections and refuse
// new ones for a while, as a network that goes away and comes back.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		ln.Close()
		g.cut(false)
		g.wg.Wait()
	})
	return g
}

func (g *gate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.down {
			g.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", g.target, 5*time.Second)
		if err != nil {
			g.mu.Unlock()
			c.Close()
			continue
		}
		g.conns = append(g.conns, c, up)
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(c, up)
		go g.pipe(up, c)
	}
}

func (g *gate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every proxied connection; down refuses new ones until
// cut(false).
func (g *gate) cut(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// TestClientReportsMissed: when messages for a Client were dropped while
// its network was away, the resumed event carries how many
// (docs/protocol.md section 10), and the Client receives the rest.
func TestClientReportsMissed(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_QUEUE_SIZE=4")
	g := startGate(t, ts.Addr().String())
	alice, err := client.Dial(relaytest.Ctx(t, 5*time.Second), strings.Replace(ts.WS, ts.Addr().String(), g.ln.Addr().String(), 1),
		&client.Options{Peer: "alice", Resume: true, ResumeTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alice.CloseNow() })
	relaytest.Join(t, alice, "r")
	bob := ts.Dial("bob")
	relaytest.Join(t, bob, "r")
	relaytest.Recv(t, alice, "peer_joined")
	// Alice acknowledges what she has, so that nothing is kept for a replay.
	for range 2 {
		if err := alice.Ping(nil); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, alice, "pong")
	}

	g.cut(true)
	relaytest.Eventually(t, 5*time.Second, "alice detached", func() bool {
		c := ts.Router.Lookup("alice")
		return c != nil && c.Detached()
	})
	for i := 1; i <= 10; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	relaytest.Eventually(t, 5*time.Second, "six drops", func() bool {
		return ts.Stats.DroppedBy(stats.DropQueueFull) == 6
	})
	g.cut(false)

	ev := relaytest.Recv(t, alice, "resumed")
	if !ev.Resumed || ev.Missed != 6 {
		t.Fatalf("resumed event %+v, want resumed with 6 missed", ev)
	}
	for i := 1; i <= 4; i++ {
		if m := relaytest.Recv(t, alice, "publish"); string(m.Data) != string(rune('0'+i)) {
			t.Fatalf("got %s, want publish %d", m.Raw, i)
		}
	}
}
