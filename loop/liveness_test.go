package loop_test

import (
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestHeartbeatKeepsLiveClients(t *testing.T) {
	t.Parallel()
	ts := relaytest.Start(t, "WSRELAY_PING_INTERVAL=200ms", "WSRELAY_CLIENT_TIMEOUT=1s")
	a := ts.Dial("a") // answers pings with pongs, sends nothing else
	time.Sleep(time.Second)
	n1 := a.PingsReceived()
	time.Sleep(1500 * time.Millisecond)
	// The sweeper works in 250 ms ticks, so a 200 ms interval pings every 250 ms.
	if n := a.PingsReceived() - n1; n < 5 || n > 8 {
		t.Fatalf("received %d pings in 1.5 s at a 200 ms interval", n)
	}
	if err := a.Ping(nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "pong")
}

// TestSilentClientIsClosed: with resume off (version 1 behaviour), a silent
// peer is closed and reported peer_left once CLIENT_TIMEOUT passes.
func TestSilentClientIsClosed(t *testing.T) {
	t.Parallel()
	ts := relaytest.Start(t, "WSRELAY_PING_INTERVAL=200ms", "WSRELAY_CLIENT_TIMEOUT=1s", "WSRELAY_RESUME_WINDOW=0")
	watcher := ts.Dial("w")
	relaytest.Join(t, watcher, "r")
	// A raw client that never answers pings nor sends anything.
	rc := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer=silent")
	start := time.Now()
	if _, p, err := rc.ReadFrame(time.Second); err != nil {
		t.Fatalf("welcome: %v %s", err, p)
	}
	if err := rc.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, watcher, "peer_joined")
	m := relaytest.Recv(t, watcher, "peer_left")
	el := time.Since(start)
	if m.Peer != "silent" {
		t.Fatalf("peer_left = %s", m.Raw)
	}
	// Last sign of life was the join; closed within a second after the timeout.
	if el < 900*time.Millisecond || el > 2200*time.Millisecond {
		t.Fatalf("silent client removed after %v, want 1-2 s", el)
	}
	if ts.Stats.EvictedBy(0) != 1 { // stats.EvictTimeout
		t.Fatal("timeout eviction not counted")
	}
	// The watcher, which answers pings, is still connected.
	if err := watcher.Ping(nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, watcher, "pong")
}
