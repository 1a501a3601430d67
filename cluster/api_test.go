package cluster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestServerAPIAcrossNodes: the server API of one node reaches peers on the
// other: publish and broadcast through the backplane, direct and disconnect
// to the node that holds the peer, room listings from the replicated view.
func TestServerAPIAcrossNodes(t *testing.T) {
	ns := startNATS(t, 0)
	env := []string{"WSRELAY_ADMIN_ADDR=127.0.0.1:0", "WSRELAY_API_KEY=" + relaytest.APIKey, "WSRELAY_ALLOW_BROADCAST=false"}
	a := startNode(t, natsURL(ns), "a", env...)
	b := startNode(t, natsURL(ns), "b", env...)
	waitMesh(t, a, b)

	alice := a.Dial("alice")
	bob := b.Dial("bob")
	carol := b.Dial("carol")
	relaytest.Join(t, alice, "lobby")
	relaytest.Join(t, bob, "lobby")
	waitMembers(t, "lobby", 1, a, b) // each node sees the other's member
	waitPeer(t, "carol", b, a)

	// publish on A reaches the members on B (and on A).
	code, m := a.Call("POST", "/api/publish", `{"room":"lobby","data":"round 2"}`)
	if code != 200 || m["recipients"] != 2.0 {
		t.Fatalf("publish on a: %d %v", code, m)
	}
	for _, c := range []*client.Client{alice, bob} {
		if got := relaytest.Recv(t, c, "publish"); got.From != "@server" || got.Room != "lobby" || string(got.Data) != `"round 2"` {
			t.Fatalf("%s got %s", c.PeerID(), got.Raw)
		}
	}
	relaytest.QuietType(t, carol, "publish", 100*time.Millisecond)

	// direct from A to a peer on B.
	if code, m := a.Call("POST", "/api/direct", `{"to":"carol","data":1}`); code != 200 || m["recipients"] != 1.0 {
		t.Fatalf("direct on a to carol on b: %d %v", code, m)
	}
	if got := relaytest.Recv(t, carol, "direct"); got.From != "@server" || string(got.Data) != "1" {
		t.Fatalf("carol got %s", got.Raw)
	}
	if code, m := a.Call("POST", "/api/direct", `{"to":"nobody","data":1}`); code != 404 || m["error"] != "peer_not_found" {
		t.Fatalf("direct to nobody: %d %v", code, m)
	}

	// broadcast from B reaches every peer on both nodes.
	if code, m := b.Call("POST", "/api/broadcast", `{"data":true}`); code != 200 || m["recipients"] != 3.0 {
		t.Fatalf("broadcast on b: %d %v", code, m)
	}
	for _, c := range []*client.Client{alice, bob, carol} {
		if got := relaytest.Recv(t, c, "broadcast"); got.From != "@server" {
			t.Fatalf("%s got %s", c.PeerID(), got.Raw)
		}
	}

	// The room as either node lists it.
	for _, n := range []*node{a, b} {
		code, m := n.Call("GET", "/api/rooms/lobby", "")
		var peers []string
		for _, p := range m["peers"].([]any) {
			peers = append(peers, p.(string))
		}
		slices.Sort(peers)
		if code != 200 || !slices.Equal(peers, []string{"alice", "bob"}) {
			t.Fatalf("rooms on %s: %d %v", n.id, code, m)
		}
	}

	// disconnect from A of a peer on B: closed there, gone everywhere.
	if code, m := a.Call("POST", "/api/disconnect", `{"peer":"bob","code":4010,"reason":"kicked"}`); code != 200 || m["peer"] != "bob" {
		t.Fatalf("disconnect on a of bob on b: %d %v", code, m)
	}
	if code := relaytest.CloseCode(t, bob, 5*time.Second); code != 4010 {
		t.Fatalf("bob closed with %d, want 4010", code)
	}
	if left := relaytest.Recv(t, alice, "peer_left"); left.Peer != "bob" {
		t.Fatalf("alice got %s", left.Raw)
	}
	relaytest.Eventually(t, 5*time.Second, "bob unknown on a", func() bool {
		code, _ := a.Call("POST", "/api/disconnect", `{"peer":"bob"}`)
		return code == 404
	})
}
