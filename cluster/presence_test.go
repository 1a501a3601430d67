package cluster

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// TestPresenceGapAndExpiry plays another node by hand on a real NATS
// server: a gap in its presence numbering makes this node ask it for a
// snapshot, its records are applied, and once it falls silent for DeadAfter
// its peers are forgotten.
func TestPresenceGapAndExpiry(t *testing.T) {
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
	c, err := New(Config{URL: url, NodeID: "me", Prefix: "gap", Heartbeat: 100 * time.Millisecond, DeadAfter: 300 * time.Millisecond}, rt, st, nil)
	if err != nil {
		t.Fatal(err)
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
	inbox, err := fake.SubscribeSync("gap.node.fake")
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Flush(); err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64, records ...byte) {
		t.Helper()
		msg := appendPresenceHeader(nil, "fake", 42, seq)
		if err := fake.Publish("gap.presence", append(msg, records...)); err != nil {
			t.Fatal(err)
		}
	}
	// Malformed messages from anyone are ignored, whatever their subject.
	for _, junk := range [][]byte{
		nil, {kindPresence}, {kindPresence, 200}, appendPresenceHeader(nil, "fake", 42, 1)[:10],
		append(appendPresenceHeader(nil, "junk", 1, 1), recUp, 50, 'x'),
		append(appendPresenceHeader(nil, "junk", 1, 2), '?', 1, 2, 3),
		{kindRoom, 9, 1, 'r', 'x'}, {kindRoom, frame.OpText, 40, 'r'}, {kindDirect, frame.OpText},
		{kindBroadcast}, {'z', 1, 2}, {kindSyncReq},
	} {
		for _, subject := range []string{"gap.presence", "gap.node.me", "gap.all"} {
			if err := fake.Publish(subject, junk); err != nil {
				t.Fatal(err)
			}
		}
	}
	gen := binary.BigEndian.AppendUint64(nil, 1)
	snap := append(append([]byte{recSnapStart}, gen...), 0)
	snap = append(append(snap, recSnapEnd), gen...)
	send(1, snap...)
	// Message 2 is lost; message 3 announces a peer.
	send(3, appendRecUp(nil, "p", 1)...)

	m, err := inbox.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatalf("no snapshot request after a gap: %v", err)
	}
	if len(m.Data) < 2 || m.Data[0] != kindSyncReq || string(m.Data[2:]) != "me" {
		t.Fatalf("request %q", m.Data)
	}
	deadline := time.Now().Add(2 * time.Second)
	for c.PeerNode("p") != "fake" {
		if time.Now().After(deadline) {
			t.Fatal("peer p not in the directory")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Silence: gone after DeadAfter, within a check interval.
	start := time.Now()
	for c.PeerNode("p") != "" {
		if time.Since(start) > 2*time.Second {
			t.Fatal("silent node not expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); took > 450*time.Millisecond {
		t.Fatalf("expired after %v, want about 300ms", took)
	}
	if c.Nodes() != 0 {
		t.Fatalf("%d nodes left", c.Nodes())
	}
}
