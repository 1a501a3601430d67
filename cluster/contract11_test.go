package cluster_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestRemoteRecipientNeverPauses: a member on another node that never
// reads does not hold a publisher back (docs/protocol.md section 9), however
// long STALL_TIMEOUT is; it loses frames on its own node instead.
func TestRemoteRecipientNeverPauses(t *testing.T) {
	ns := startNATS(t, 0)
	env := []string{"WSRELAY_STALL_TIMEOUT=20s", "WSRELAY_QUEUE_SIZE=16", "WSRELAY_CLIENT_TIMEOUT=10m"}
	n1 := startNode(t, natsURL(ns), "n1", env...)
	n2 := startNode(t, natsURL(ns), "n2", env...)
	waitMesh(t, n1, n2)

	pub := n1.Dial("pub")
	relaytest.Join(t, pub, "r")
	idle := relaytest.RawDial(t, n2.Addr().String(), "/ws?peer=idle")
	t.Cleanup(func() { idle.Close() })
	_ = idle.Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	if err := idle.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, pub, "peer_joined")

	start := time.Now()
	relaytest.PublishBurst(t, pub, "r", 1000, 8<<10) // 8 MB: more than the loopback socket buffers take
	relaytest.AckLast(t, pub, time.Minute)
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("the burst took %v", el)
	}
	if p := n1.Stats.FlowPauses(); p != 0 {
		t.Fatalf("the publisher was paused %d times for a member on another node", p)
	}
	relaytest.Eventually(t, 10*time.Second, "drops for the idle member on n2", func() bool {
		return n2.Stats.DroppedBy(0) > 0 // stats.DropQueueFull
	})
}

// TestShutdownEndsSessions: server shutdown ends its sessions rather than
// detaching them (docs/protocol.md section 10): members on another node get
// peer_left at once, not when the resume window passes.
func TestShutdownEndsSessions(t *testing.T) {
	n1, _, alice, bob := roomAcross(t, "alice", "bob")

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := relaytest.CloseCode(t, alice, 5*time.Second); code != 1001 {
		t.Fatalf("alice closed with %d, want 1001", code)
	}
	if m := relaytest.Recv(t, bob, "peer_left"); m.Peer != "alice" || time.Since(start) > 5*time.Second {
		t.Fatalf("bob got %s after %v, want peer_left at shutdown (resume window 30 s)", m.Raw, time.Since(start))
	}
}
