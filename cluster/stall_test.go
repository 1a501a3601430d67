package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestStalledNATSKeepsLocalTraffic stops reading what a node sends to NATS,
// as a NATS server whose socket stalls would, and floods the node with
// presence changes until every buffer on the way (the kernel's, nats.go's)
// is full and nats.go's writes block. Local traffic must go on: the router
// reaches the cluster under its room locks (Joined, Left), and no lock may
// be held across a NATS call, or one stalled write would freeze every room
// and the poller with it.
func TestStalledNATSKeepsLocalTraffic(t *testing.T) {
	ns := startNATS(t, 0)
	px := startStallProxy(t, ns.Addr().String())
	n1 := startNode(t, px.url(), "n1")
	flood := n1.Dial(strings.Repeat("f", 64))
	y := n1.Dial("y")
	z := n1.Dial("z")

	// n1's presence reaches NATS before the stall.
	obs, err := nats.Connect(natsURL(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	seen := make(chan struct{}, 1)
	sub, err := obs.Subscribe(strings.ReplaceAll(t.Name(), "/", "_")+".presence", func(*nats.Msg) {
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	relaytest.Join(t, flood, "warm-up")
	if err := flood.Leave("warm-up", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, flood, "left")
	select {
	case <-seen:
	case <-time.After(5 * time.Second):
		t.Fatal("no presence from the node before the stall")
	}

	px.stall()
	// Each join or leave is a presence message of about 210 bytes: 30,000
	// of them are over 6 MB, more than the kernel and nats.go buffer.
	room := strings.Repeat("r", 127)
	const changes = 15000
	done := make(chan error, 1)
	go func() {
		for i := range changes {
			r := room + string(rune('a'+i%26))
			if err := flood.Join(r, nil); err != nil {
				done <- err
				return
			}
			if err := flood.Leave(r, nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the node stopped reading the flood of joins (30 s)")
	}
	// The last leave was handled: the node is past the flood.
	relaytest.Eventually(t, 20*time.Second, "flood handled", func() bool {
		return len(n1.Router.Members(room+string(rune('a'+(changes-1)%26)))) == 0 && n1.Router.Rooms() == 0
	})
	if got, sent := px.forwarded(), int64(2*changes*200); got > sent/2 {
		t.Fatalf("NATS received %d bytes of the node's %d: the stall did not hold", got, sent)
	}

	// Local peers on the stalled node: join, publish with ack, direct.
	start := time.Now()
	relaytest.Join(t, y, "local")
	relaytest.Join(t, z, "local")
	relaytest.Recv(t, y, "peer_joined")
	if err := y.Publish("local", "hello", 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, y, "ack")
	if m := relaytest.Recv(t, z, "publish"); string(m.Data) != `"hello"` {
		t.Fatalf("z got %s", m.Raw)
	}
	if err := z.Direct("y", "hi", 2); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, z, "ack")
	relaytest.Recv(t, y, "direct")
	if err := y.Leave("local", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, y, "left")
	relaytest.Recv(t, z, "peer_left")
	t.Logf("local traffic with NATS stalled: answered in %v; NATS got %d bytes from the node", time.Since(start), px.forwarded())
	px.resume()
}
