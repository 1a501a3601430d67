package loop_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestWelcomeIsFirst(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_PING_INTERVAL=7s", "WSRELAY_CLIENT_TIMEOUT=21s", "WSRELAY_QUEUE_SIZE=33", "WSRELAY_MAX_MESSAGE_BYTES=4096")
	c := ts.Dial("alice")
	w := c.Welcome()
	if w.Type != "welcome" || w.Peer != "alice" || w.Server != "wsrelay/test" {
		t.Fatalf("welcome = %+v", w)
	}
	if w.HeartbeatMS != 7000 || w.TimeoutMS != 21000 || w.QueueSize != 33 || w.MaxMessageBytes != 4096 {
		t.Fatalf("welcome limits = %s", w.Raw)
	}
}

func TestPeerIDs(t *testing.T) {
	ts := relaytest.Start(t)
	seen := map[string]bool{}
	for range 20 {
		id := ts.Dial("").PeerID()
		// 96 bits of randomness need at least 16 URL-safe base64 characters.
		if len(id) < 16 || seen[id] {
			t.Fatalf("random id %q (len %d, seen before %v)", id, len(id), seen[id])
		}
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				t.Fatalf("random id %q is not URL-safe", id)
			}
		}
		seen[id] = true
	}
	for _, id := range []string{"a", "user:42", "dev.ice_1-2", "x123456789012345678901234567890123456789012345678901234567890123"} {
		if got := ts.Dial(id).PeerID(); got != id {
			t.Errorf("asked %q, got %q", id, got)
		}
	}
	for _, bad := range []string{"has space", "slash/no", "émoji", "x1234567890123456789012345678901234567890123456789012345678901234"} {
		t.Run(bad, func(t *testing.T) {
			if code, _ := ts.DialStatus(&client.Options{Peer: bad}); code != http.StatusBadRequest {
				t.Fatalf("peer %q: status %d, want 400", bad, code)
			}
		})
	}
	if got := ts.Stats.RejectedBy(5); got == 0 { // stats.RejectBadRequest
		t.Errorf("bad_request rejections not counted")
	}
}

func TestDuplicatePeerReplacesOld(t *testing.T) {
	ts := relaytest.Start(t)
	old := ts.Dial("bob")
	relaytest.Join(t, old, "r")
	watcher := ts.Dial("w")
	relaytest.Join(t, watcher, "r")
	relaytest.Recv(t, old, "peer_joined")

	fresh := ts.Dial("bob")
	if code := relaytest.CloseCode(t, old, 5*time.Second); code != 4001 {
		t.Fatalf("old connection closed with %d, want 4001", code)
	}
	left := relaytest.Recv(t, watcher, "peer_left")
	if left.Peer != "bob" || left.Room != "r" {
		t.Fatalf("peer_left = %s", left.Raw)
	}
	if err := watcher.Direct("bob", "hi", nil); err != nil {
		t.Fatal(err)
	}
	m := relaytest.Recv(t, fresh, "direct")
	if m.From != "w" || string(m.Data) != `"hi"` {
		t.Fatalf("direct to new connection = %s", m.Raw)
	}
	// The replaced connection's teardown must not unregister the new one.
	time.Sleep(100 * time.Millisecond)
	if ts.Router.Lookup("bob") == nil {
		t.Fatal("new connection lost its registration")
	}
	if got := ts.Stats.EvictedBy(1); got != 1 { // stats.EvictReplaced
		t.Errorf("replaced evictions = %d", got)
	}
}

// TestAbruptDisconnect: with resume off (version 1 behaviour), a peer that
// vanishes without a close frame is reported peer_left at once.
func TestAbruptDisconnect(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RESUME_WINDOW=0")
	a, b := ts.Dial("a"), ts.Dial("b")
	relaytest.Join(t, a, "room")
	relaytest.Join(t, b, "room")
	relaytest.Recv(t, a, "peer_joined")
	_ = b.CloseNow()
	m := relaytest.Recv(t, a, "peer_left")
	if m.Peer != "b" {
		t.Fatalf("peer_left = %s", m.Raw)
	}
	deadline := time.Now().Add(2 * time.Second)
	for ts.Stats.Connections() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ts.Stats.Connections(); n != 1 {
		t.Fatalf("connections = %d after abrupt close, want 1", n)
	}
}
