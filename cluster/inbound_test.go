package cluster

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// testNode is a Cluster on a real NATS server with a router of its own and
// no sockets, and a plain NATS connection to play the other nodes.
type testNode struct {
	c    *Cluster
	st   *stats.Stats
	rt   *router.Router
	fake *nats.Conn
}

// startTestNode starts NATS and a node "me" with prefix p; queue, when not
// 0, replaces the inbound queue's capacity.
func startTestNode(t *testing.T, p string, queue int) *testNode {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := "nats://" + ns.Addr().String()
	st := stats.New(metrics.NewSet(), 10)
	rt := router.New(router.Options{MaxRoomsPerPeer: 4}, st)
	c, err := New(Config{URL: url, NodeID: "me", Prefix: p}, rt, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if queue > 0 {
		c.msgs = make(chan *nats.Msg, queue)
	}
	rt.SetBackplane(c)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	fake, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return &testNode{c: c, st: st, rt: rt, fake: fake}
}

func waitCount(t *testing.T, what string, want uint64, got func() uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for got() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d", what, got(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMalformedCounted sends the node messages it cannot decode, on each of
// its subjects: each is counted once as cluster_malformed, and a valid
// message after them is handled as usual.
func TestMalformedCounted(t *testing.T) {
	n := startTestNode(t, "bad", 0)
	presence := appendPresenceHeader(nil, "other", 7, 1)
	cases := []struct {
		name, subject string
		data          []byte
	}{
		{"empty", "bad.node.me", nil},
		{"one byte", "bad.node.me", []byte{kindDirect}},
		{"unknown kind", "bad.node.me", []byte("z1")},
		{"direct with a bad opcode", "bad.node.me", append([]byte{kindDirect, 9, 1, 'x'}, "{}"...)},
		{"direct with a short peer id", "bad.node.me", []byte{kindDirect, 1, 5, 'x'}},
		{"room frame with a short room", "bad.node.me", []byte{kindRoom, 1, 200}},
		{"broadcast with a close opcode", "bad.all", []byte{kindBroadcast, 8, 'x'}},
		{"snapshot request without a node", "bad.node.me", []byte{kindSyncReq, 3, 'a'}},
		{"presence cut in its header", "bad.presence", presence[:10]},
		{"presence without records", "bad.presence", presence},
		{"presence with an unknown record", "bad.presence", append(append([]byte(nil), presence...), 'Z')},
		{"presence with a cut join", "bad.presence", append(append([]byte(nil), presence...), recJoin, 5, 'p')},
		{"presence with a record after its goodbye", "bad.presence", appendRecUp(append(appendPresenceHeader(nil, "other", 7, 2), recBye), "ghost", 1)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := n.fake.Publish(tc.subject, tc.data); err != nil {
				t.Fatal(err)
			}
			if err := n.fake.Flush(); err != nil {
				t.Fatal(err)
			}
			waitCount(t, "cluster_malformed", uint64(i+1), func() uint64 { return n.st.DroppedBy(stats.DropClusterMalformed) })
		})
	}
	// A valid direct for a peer that is not here: no_route, not malformed.
	if err := n.fake.Publish("bad.node.me", append([]byte{kindDirect, 1, 3, 'b', 'o', 'b'}, `{"type":"direct"}`...)); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "no_route", 1, func() uint64 { return n.st.DroppedBy(stats.DropNoRoute) })
	if node := n.c.PeerNode("ghost"); node != "" {
		t.Fatalf("a peer registered after its node's goodbye is in the view, on %q", node)
	}
	if got := n.st.DroppedBy(stats.DropClusterMalformed); got != uint64(len(cases)) {
		t.Fatalf("cluster_malformed %d, want %d", got, len(cases))
	}
}

// TestSlowConsumerCounted sends a node, whose inbound queue holds only 4
// messages, bursts of direct frames for a peer that is not there. Each
// frame is counted exactly once: as no_route when the node handled it, or
// as cluster_slow_consumer when nats.go dropped it because the queue was
// full.
func TestSlowConsumerCounted(t *testing.T) {
	n := startTestNode(t, "slow", 4)
	msg := append([]byte{kindDirect, 1, 3, 'b', 'o', 'b'}, `{"type":"direct","from":"x","data":1}`...)
	const burst = 20000
	sent := uint64(0)
	for round := 0; round < 5 && n.st.DroppedBy(stats.DropClusterSlowConsumer) == 0; round++ {
		for range burst {
			if err := n.fake.Publish("slow.node.me", msg); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.fake.Flush(); err != nil {
			t.Fatal(err)
		}
		sent += burst
		// Drops are read at least once a heartbeat (1 s).
		waitCount(t, "no_route + cluster_slow_consumer", sent, func() uint64 {
			return n.st.DroppedBy(stats.DropNoRoute) + n.st.DroppedBy(stats.DropClusterSlowConsumer)
		})
	}
	slow := n.st.DroppedBy(stats.DropClusterSlowConsumer)
	if slow == 0 {
		t.Fatalf("no slow-consumer drop in %d frames through a queue of 4", sent)
	}
	t.Logf("%d frames: %d handled (no_route), %d dropped by nats.go (cluster_slow_consumer)", sent, n.st.DroppedBy(stats.DropNoRoute), slow)
}
