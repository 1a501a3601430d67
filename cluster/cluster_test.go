package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestDirectAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	alice := n1.Dial("alice")
	bob := n2.Dial("bob")
	waitPeer(t, "bob", n2, n1)
	waitPeer(t, "alice", n1, n2)

	if err := alice.Direct("bob", map[string]int{"n": 1}, 7); err != nil {
		t.Fatal(err)
	}
	if ack := relaytest.Recv(t, alice, "ack"); string(ack.ID) != "7" {
		t.Fatalf("ack id %s, want 7", ack.ID)
	}
	m := relaytest.Recv(t, bob, "direct")
	if m.From != "alice" || string(m.Data) != `{"n":1}` {
		t.Fatalf("bob got %s", m.Raw)
	}
	// And back, and to a peer no node has.
	if err := bob.Direct("alice", "hi", nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, alice, "direct"); m.From != "bob" || string(m.Data) != `"hi"` {
		t.Fatalf("alice got %s", m.Raw)
	}
	if err := alice.Direct("nobody", 1, "x"); err != nil {
		t.Fatal(err)
	}
	if e := relaytest.Recv(t, alice, "error"); e.Code != "peer_not_found" || string(e.ID) != `"x"` {
		t.Fatalf("direct to nobody: %s", e.Raw)
	}
}

func TestPublishAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3)
	a := nodes[0].Dial("a")
	a2 := nodes[0].Dial("a2")
	b := nodes[1].Dial("b")
	c := nodes[2].Dial("c")
	outsider := nodes[2].Dial("outsider")
	for _, p := range []*client.Client{a, a2, b, c} {
		relaytest.Join(t, p, "room")
	}
	relaytest.Eventually(t, 5*time.Second, "memberships replicated", func() bool {
		return len(nodes[0].Cluster.AppendMembers(nil, "room", 10)) == 2 &&
			len(nodes[1].Cluster.AppendMembers(nil, "room", 10)) == 3 &&
			len(nodes[2].Cluster.AppendMembers(nil, "room", 10)) == 3
	})

	if err := a.Publish("room", []int{1, 2}, 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "ack")
	for _, p := range []*client.Client{a2, b, c} {
		m := relaytest.Recv(t, p, "publish")
		if m.From != "a" || m.Room != "room" || string(m.Data) != "[1,2]" {
			t.Fatalf("%s got %s", p.PeerID(), m.Raw)
		}
	}
	relaytest.QuietType(t, a, "publish", 100*time.Millisecond)
	relaytest.QuietType(t, outsider, "publish", 10*time.Millisecond)

	// A room whose other members are all on other nodes: acked, delivered.
	relaytest.Join(t, b, "far")
	relaytest.Join(t, c, "far")
	relaytest.Eventually(t, 5*time.Second, "far replicated", func() bool {
		return len(nodes[1].Cluster.AppendMembers(nil, "far", 10)) == 1
	})
	if err := b.Publish("far", "x", "p1"); err != nil {
		t.Fatal(err)
	}
	if ack := relaytest.Recv(t, b, "ack"); string(ack.ID) != `"p1"` {
		t.Fatalf("ack %s", ack.Raw)
	}
	if m := relaytest.Recv(t, c, "publish"); m.Room != "far" || m.From != "b" {
		t.Fatalf("c got %s", m.Raw)
	}
	// Not a member anywhere: refused.
	if err := outsider.Publish("room", 1, 2); err != nil {
		t.Fatal(err)
	}
	if e := relaytest.Recv(t, outsider, "error"); e.Code != "not_member" {
		t.Fatalf("outsider: %s", e.Raw)
	}
}

func TestBroadcastAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3)
	a := nodes[0].Dial("a")
	a2 := nodes[0].Dial("a2")
	b := nodes[1].Dial("b")
	c := nodes[2].Dial("c")
	if err := a.Broadcast("all", 3); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "ack")
	for _, p := range []*client.Client{a2, b, c} {
		if m := relaytest.Recv(t, p, "broadcast"); m.From != "a" || string(m.Data) != `"all"` {
			t.Fatalf("%s got %s", p.PeerID(), m.Raw)
		}
	}
	relaytest.QuietType(t, a, "broadcast", 100*time.Millisecond)
}

func TestPresenceAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3)
	a := nodes[0].Dial("a")
	if j := relaytest.Join(t, a, "r"); len(j.Peers) != 0 {
		t.Fatalf("a joined with %v", j.Peers)
	}
	waitMembers(t, "r", 1, nodes[1], nodes[2])

	b := nodes[1].Dial("b")
	if j := relaytest.Join(t, b, "r"); !slices.Equal(j.Peers, []string{"a"}) {
		t.Fatalf("b joined with %v, want [a]", j.Peers)
	}
	if m := relaytest.Recv(t, a, "peer_joined"); m.Peer != "b" || m.Room != "r" {
		t.Fatalf("a got %s", m.Raw)
	}
	waitMembers(t, "r", 2, nodes[2])

	c := nodes[2].Dial("c")
	j := relaytest.Join(t, c, "r")
	sort.Strings(j.Peers)
	if !slices.Equal(j.Peers, []string{"a", "b"}) {
		t.Fatalf("c joined with %v, want [a b]", j.Peers)
	}
	for _, p := range []*client.Client{a, b} {
		if m := relaytest.Recv(t, p, "peer_joined"); m.Peer != "c" {
			t.Fatalf("%s got %s", p.PeerID(), m.Raw)
		}
	}

	// Leave: peer_left on every node.
	if err := b.Leave("r", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, b, "left")
	for _, p := range []*client.Client{a, c} {
		if m := relaytest.Recv(t, p, "peer_left"); m.Peer != "b" || m.Room != "r" {
			t.Fatalf("%s got %s", p.PeerID(), m.Raw)
		}
	}
	// Disconnect: peer_left too, and the id is free everywhere.
	_ = c.Close()
	if m := relaytest.Recv(t, a, "peer_left"); m.Peer != "c" {
		t.Fatalf("a got %s", m.Raw)
	}
	relaytest.Eventually(t, 5*time.Second, "c forgotten", func() bool { return nodes[0].Cluster.PeerNode("c") == "" })
}

// presenceOf returns the presence notices about peer that c receives until
// none came for 300 ms.
func presenceOf(t *testing.T, c *client.Client, peer string) []string {
	t.Helper()
	var got []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		m, err := c.Receive(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatalf("%s: %v", c.PeerID(), err)
		}
		if (m.Type == "peer_joined" || m.Type == "peer_left") && m.Peer == peer {
			got = append(got, m.Type)
		}
	}
}

// waitMembers waits until each node sees n remote members in room.
func waitMembers(t *testing.T, room string, n int, nodes ...*node) {
	t.Helper()
	relaytest.Eventually(t, 5*time.Second, "members of "+room, func() bool {
		for _, nd := range nodes {
			if len(nd.Cluster.AppendMembers(nil, room, 1000)) != n {
				return false
			}
		}
		return true
	})
}

// TestPresenceConvergence measures how long a join on one node takes to
// reach a member on another (docs/protocol.md section 8: within 250 ms on a
// local network). The median of several samples is asserted, so one slow
// scheduling moment on a busy machine does not fail it.
func TestPresenceConvergence(t *testing.T) {
	_, nodes := startCluster(t, 2)
	a := nodes[0].Dial("a")
	relaytest.Join(t, a, "conv")
	var samples []time.Duration
	for i := range 7 {
		p := nodes[1].Dial("p" + string(rune('0'+i)))
		start := time.Now()
		if err := p.Join("conv", nil); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, a, "peer_joined")
		samples = append(samples, time.Since(start))
		_ = p.Close()
		relaytest.Recv(t, a, "peer_left")
	}
	slices.Sort(samples)
	t.Logf("join to remote peer_joined: min %v, median %v, max %v", samples[0], samples[len(samples)/2], samples[len(samples)-1])
	if med := samples[len(samples)/2]; med > 250*time.Millisecond {
		t.Fatalf("median convergence %v, want at most 250ms", med)
	}
}

func TestDuplicatePeerAcrossNodes(t *testing.T) {
	n1, n2, watcher, remote := roomAcross(t, "watcher", "remote")
	old := n1.Dial("x")
	relaytest.Join(t, old, "r")
	relaytest.Recv(t, watcher, "peer_joined")
	// remote may first learn of watcher (if it joined before watcher's join
	// reached its node); then x.
	for {
		m := relaytest.Recv(t, remote, "peer_joined")
		if m.Peer == "x" {
			break
		}
		if m.Peer != "watcher" {
			t.Fatalf("remote got %s", m.Raw)
		}
	}
	waitPeer(t, "x", n1, n2)
	waitPeer(t, "watcher", n1, n2)

	fresh := n2.Dial("x")
	relaytest.Join(t, fresh, "r")
	_, err := old.ReceiveType(relaytest.Ctx(t, 5*time.Second), "never")
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != frame.CloseReplaced {
		t.Fatalf("older connection: want close 4001, got %v", err)
	}
	// The members on the old connection's node see it leave and the new one
	// join, in that order. On the new connection's node, its own join may
	// come first (the old connection's departure has to travel back from the
	// other node); then the old one's leave is not reported, as x stays a
	// member. Either way x ends a member.
	if got := presenceOf(t, watcher, "x"); !slices.Equal(got, []string{"peer_left", "peer_joined"}) {
		t.Fatalf("watcher saw %v for x", got)
	}
	if got := presenceOf(t, remote, "x"); !slices.Equal(got, []string{"peer_left", "peer_joined"}) && !slices.Equal(got, []string{"peer_joined"}) {
		t.Fatalf("remote saw %v for x", got)
	}
	waitPeer(t, "x", n2, n1)
	if err := watcher.Direct("x", "to the new one", nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, fresh, "direct"); m.From != "watcher" {
		t.Fatalf("fresh got %s", m.Raw)
	}
	if st := n1.Stats.EvictedBy(1); st != 1 { // stats.EvictReplaced
		t.Fatalf("n1 replaced evictions %d, want 1", st)
	}
}

func TestBinaryAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 2)
	a := nodes[0].Dial("a")
	local := nodes[0].Dial("local")
	b := nodes[1].Dial("b")
	for _, p := range []*client.Client{a, local, b} {
		relaytest.Join(t, p, "bin")
	}
	waitMembers(t, "bin", 2, nodes[1])
	waitMembers(t, "bin", 1, nodes[0])

	payload := make([]byte, 70000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	payload = payload[:60000]
	if err := a.SendBinary(frame.BinPublish, 2, 0xA5, "bin", payload); err != nil {
		t.Fatal(err)
	}
	lm := relaytest.Recv(t, local, "binary")
	rm := relaytest.Recv(t, b, "binary")
	if !bytes.Equal(lm.Raw, rm.Raw) {
		t.Fatalf("remote frame differs from the local one (%d vs %d bytes)", len(rm.Raw), len(lm.Raw))
	}
	if bb := rm.Binary; bb.Op != frame.BinPublish || bb.CType != 2 || bb.Flags != 0xA5 || bb.From != "a" || bb.To != "bin" || !bytes.Equal(bb.Payload, payload) {
		t.Fatalf("remote binary: op %d ctype %d flags %x from %q to %q, %d payload bytes", bb.Op, bb.CType, bb.Flags, bb.From, bb.To, len(bb.Payload))
	}

	waitPeer(t, "b", nodes[1], nodes[0])
	small := []byte{0, 1, 2, 0xFF, 0xFE}
	if err := a.SendBinary(frame.BinDirect, 0, 3, "b", small); err != nil {
		t.Fatal(err)
	}
	m := relaytest.Recv(t, b, "binary")
	if m.Binary.Op != frame.BinDirect || m.Binary.From != "a" || m.Binary.To != "" || m.Binary.Flags != 3 || !bytes.Equal(m.Binary.Payload, small) {
		t.Fatalf("direct binary: %x", m.Raw)
	}
	if err := a.SendBinary(frame.BinBroadcast, 1, 0, "", small); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, b, "binary"); m.Binary.Op != frame.BinBroadcast || !bytes.Equal(m.Binary.Payload, small) {
		t.Fatalf("broadcast binary: %x", m.Raw)
	}
}

// TestNATSDownAtStart starts a node whose NATS server is not there yet: it
// serves its local peers, says so on /ready and /metrics, and joins the
// cluster by itself once NATS is up.
func TestNATSDownAtStart(t *testing.T) {
	ns := startNATS(t, 0)
	port := natsPort(ns)
	url := natsURL(ns)
	stopNATS(ns)

	n1 := startNode(t, url, "n1")
	if code, body := n1.get("/ready"); code != 200 || !strings.Contains(body, `"cluster":"disconnected"`) || !strings.Contains(body, `"status":"ready"`) {
		t.Fatalf("/ready %d %s", code, body)
	}
	if g := n1.clusterGauge(); g != "0" {
		t.Fatalf("wsrelay_cluster_connected %s, want 0", g)
	}
	a := n1.Dial("a")
	a2 := n1.Dial("a2")
	if err := a.Direct("a2", 1, 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "ack")
	relaytest.Recv(t, a2, "direct")
	relaytest.Join(t, a, "r")

	startNATS(t, port)
	relaytest.Eventually(t, 10*time.Second, "n1 connected", func() bool {
		_, body := n1.get("/ready")
		return strings.Contains(body, `"cluster":"connected"`)
	})
	if g := n1.clusterGauge(); g != "1" {
		t.Fatalf("wsrelay_cluster_connected %s, want 1", g)
	}
	n2 := startNode(t, url, "n2")
	waitMesh(t, n1, n2)
	b := n2.Dial("b")
	if j := relaytest.Join(t, b, "r"); !slices.Equal(j.Peers, []string{"a"}) {
		t.Fatalf("b joined with %v, want [a]", j.Peers)
	}
	waitPeer(t, "b", n2, n1)
	if err := a.Direct("b", "late", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, b, "direct")
}

// TestNATSLost takes NATS away from two running nodes and brings it back on
// the same port: local delivery never stops, the nodes report the loss, and
// reconnect and rebuild routes and presence on their own.
func TestNATSLost(t *testing.T) {
	ns, nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	port := natsPort(ns)
	a := n1.Dial("a")
	a2 := n1.Dial("a2")
	b := n2.Dial("b")
	relaytest.Join(t, a, "r")
	waitMembers(t, "r", 1, n2)
	relaytest.Join(t, b, "r")
	relaytest.Recv(t, a, "peer_joined")

	stopNATS(ns)
	relaytest.Eventually(t, 5*time.Second, "disconnected on /ready", func() bool {
		_, body := n1.get("/ready")
		return strings.Contains(body, `"cluster":"disconnected"`)
	})
	if g := n1.clusterGauge(); g != "0" {
		t.Fatalf("wsrelay_cluster_connected %s, want 0", g)
	}
	if err := a.Direct("a2", "local", 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "ack")
	relaytest.Recv(t, a2, "direct")
	// The other node is unreachable: after the dead-node timeout its peers
	// are reported as left.
	if m := relaytest.Recv(t, a, "peer_left"); m.Peer != "b" {
		t.Fatalf("a got %s", m.Raw)
	}

	back := time.Now()
	startNATS(t, port)
	relaytest.Eventually(t, 10*time.Second, "both reconnected", func() bool {
		return n1.Cluster.Connected() && n2.Cluster.Connected()
	})
	reconnected := time.Since(back)
	if m := relaytest.Recv(t, a, "peer_joined"); m.Peer != "b" {
		t.Fatalf("a got %s", m.Raw)
	}
	t.Logf("NATS back: both nodes reconnected after %v, presence rebuilt after %v", reconnected, time.Since(back))
	waitPeer(t, "b", n2, n1)
	if err := a.Publish("r", "again", 9); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "ack")
	if m := relaytest.Recv(t, b, "publish"); string(m.Data) != `"again"` {
		t.Fatalf("b got %s", m.Raw)
	}
	if g := n1.clusterGauge(); g != "1" {
		t.Fatalf("wsrelay_cluster_connected %s, want 1", g)
	}
}

// TestNodeDies cuts a node off without warning (its NATS connection dies
// as with a crashed host): the others report its peers as left and free
// their ids within the dead-node timeout, 3 s after its last heartbeat.
func TestNodeDies(t *testing.T) {
	ns := startNATS(t, 0)
	n1 := startNode(t, natsURL(ns), "n1")
	px := startProxy(t, ns.Addr().String())
	n2 := startNode(t, px.url(), "n2")
	waitMesh(t, n1, n2)
	a := n1.Dial("a")
	relaytest.Join(t, a, "r")
	b := n2.Dial("b")
	relaytest.Join(t, b, "r")
	relaytest.Recv(t, a, "peer_joined")
	waitPeer(t, "b", n2, n1)

	start := time.Now()
	px.cut()
	m := relaytest.Recv(t, a, "peer_left")
	took := time.Since(start)
	t.Logf("dead node detected after %v", took)
	if m.Peer != "b" {
		t.Fatalf("a got %s", m.Raw)
	}
	if took < 2*time.Second || took > 4500*time.Millisecond {
		t.Fatalf("peers of the dead node left after %v, want about 3s", took)
	}
	if n1.Cluster.PeerNode("b") != "" {
		t.Fatal("b still in the directory")
	}
	if err := a.Direct("b", 1, 1); err != nil {
		t.Fatal(err)
	}
	if e := relaytest.Recv(t, a, "error"); e.Code != "peer_not_found" {
		t.Fatalf("direct to b: %s", e.Raw)
	}
	// The id is free: b can come back on n1.
	b2 := n1.Dial("b")
	if j := relaytest.Join(t, b2, "r"); !slices.Equal(j.Peers, []string{"a"}) {
		t.Fatalf("b joined with %v", j.Peers)
	}
}

// TestGracefulLeave: a node that shuts down tells the others, whose members
// see its peers leave at once.
func TestGracefulLeave(t *testing.T) {
	n1, n2, a, _ := roomAcross(t, "a", "b")
	start := time.Now()
	n2.Close()
	if m := relaytest.Recv(t, a, "peer_left"); m.Peer != "b" {
		t.Fatalf("a got %s", m.Raw)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("peer_left after %v, want well under the dead-node timeout", took)
	}
	relaytest.Eventually(t, time.Second, "n2 gone", func() bool { return n1.Cluster.Nodes() == 0 })
}

// TestRoomSubscriptions: a node holds a NATS subscription for a room only
// while it has local members there.
func TestRoomSubscriptions(t *testing.T) {
	ns, nodes := startCluster(t, 2)
	base := ns.NumSubscriptions()
	a := nodes[0].Dial("a")
	a2 := nodes[0].Dial("a2")
	b := nodes[1].Dial("b")
	subs := func(want uint32) {
		t.Helper()
		relaytest.Eventually(t, 5*time.Second, sprint("subscriptions ", want), func() bool { return ns.NumSubscriptions() == want })
	}
	relaytest.Join(t, a, "r")
	subs(base + 1)
	relaytest.Join(t, a2, "r")
	relaytest.Join(t, a, "other")
	subs(base + 2)
	relaytest.Join(t, b, "r")
	subs(base + 3)
	_ = a2.Close()
	if err := a.Leave("r", nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "left")
	subs(base + 2) // "r" on n2, "other" on n1
	_ = a.Close()
	subs(base + 1)
	_ = b.Close()
	subs(base)
}

// TestSingleNode: without WSRELAY_NATS_URL there is no cluster, no
// "cluster" field on /ready and no wsrelay_cluster_connected series.
func TestSingleNode(t *testing.T) {
	n := startNode(t, "", "")
	if n.Cluster != nil {
		t.Fatal("cluster configured without WSRELAY_NATS_URL")
	}
	if code, body := n.get("/ready"); code != 200 || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Fatalf("/ready %d %s", code, body)
	}
	if _, body := n.get("/metrics"); strings.Contains(body, "wsrelay_cluster_connected") {
		t.Fatal("wsrelay_cluster_connected exported without clustering")
	}
}
