package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/stats"
)

// TestSendFailedCounted loses NATS while the other node is still in the
// view (it is declared dead only after 3 s): a direct to a peer there and a
// publish to a room with members there did not leave the node. The sender
// gets no ack (and no error), local members still get the publish, and each
// message is counted once as cluster_send_failed, never as no_route.
func TestSendFailedCounted(t *testing.T) {
	ns, nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	alice := n1.Dial("alice")
	carol := n1.Dial("carol")
	bob := n2.Dial("bob")
	waitPeer(t, "bob", n2, n1)
	relaytest.Join(t, alice, "r")
	relaytest.Join(t, carol, "r")
	relaytest.Join(t, bob, "r")
	relaytest.Recv(t, alice, "peer_joined")
	relaytest.Recv(t, alice, "peer_joined")
	waitMembers(t, "r", 1, n1)

	// Connected, both are acked.
	if err := alice.Direct("bob", "before", "d0"); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, alice, "ack")
	relaytest.Recv(t, bob, "direct")

	stopNATS(ns)
	relaytest.Eventually(t, 2*time.Second, "n1 disconnected", func() bool { return !n1.Cluster.Connected() })
	if n1.Cluster.PeerNode("bob") != "n2" {
		t.Fatal("bob left n1's view too early for this test")
	}
	noRoute := n1.Stats.DroppedBy(stats.DropNoRoute)

	if err := alice.Direct("bob", "lost", "d1"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish("r", "half", "p1"); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, carol, "publish"); string(m.Data) != `"half"` {
		t.Fatalf("carol got %s", m.Raw)
	}
	// A local direct afterwards is acked: alice's messages are answered in
	// order, so nothing came for d1 and p1.
	if err := alice.Direct("carol", "local", "d2"); err != nil {
		t.Fatal(err)
	}
	for {
		m := relaytest.Next(t, alice)
		if m.Type == "ack" && string(m.ID) == `"d2"` {
			break
		}
		if m.Type == "ack" || m.Type == "error" {
			t.Fatalf("a message that did not leave the node was answered: %s", m.Raw)
		}
	}
	if got := n1.Stats.DroppedBy(stats.DropClusterSendFailed); got != 2 {
		t.Fatalf("cluster_send_failed %d, want 2", got)
	}
	if got := n1.Stats.DroppedBy(stats.DropNoRoute); got != noRoute {
		t.Fatalf("no_route went from %d to %d", noRoute, got)
	}
	_, body := n1.get("/metrics")
	if !strings.Contains(body, `wsrelay_messages_dropped_total{reason="cluster_send_failed"} 2`) {
		t.Fatalf("/metrics lacks cluster_send_failed 2")
	}
}
