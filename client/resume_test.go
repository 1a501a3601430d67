package client_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// dialResuming connects peer with Options.Resume against ts.
func dialResuming(t *testing.T, ts *relaytest.Server, peer string) *client.Client {
	t.Helper()
	c, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Peer: peer, Resume: true, ResumeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func TestClientResumesByItself(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0")
	alice := dialResuming(t, ts, "alice")
	if alice.Welcome().Resume == "" || alice.Welcome().Resumed {
		t.Fatalf("welcome %s", alice.Welcome().Raw)
	}
	relaytest.Join(t, alice, "r")
	bob := ts.Dial("bob")
	relaytest.Join(t, bob, "r")
	relaytest.Recv(t, alice, "peer_joined")
	for i := 1; i <= 3; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, alice, "publish"); string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("got %s", m.Raw)
		}
	}
	if n := alice.Received(); n != 5 { // joined, peer_joined, three publishes
		t.Fatalf("Received = %d, want 5", n)
	}

	// The network drops alice's connection; bob keeps publishing.
	_ = alice.NetConn().Close()
	for i := 4; i <= 9; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	ev := relaytest.Recv(t, alice, "resumed")
	if !ev.Resumed || ev.Missed != 0 || len(ev.Rooms) != 1 || ev.Rooms[0] != "r" {
		t.Fatalf("resumed event %+v", ev)
	}
	for i := 4; i <= 9; i++ {
		m := relaytest.Next(t, alice)
		if m.Type != "publish" || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("after the resume got %s, want publish %d", m.Raw, i)
		}
	}
	relaytest.QuietType(t, bob, "peer_left", 100*time.Millisecond)
	// The Client's pings carry its count: the relay lets go of the replay.
	if err := alice.Ping(nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, alice, "pong")
	if err := alice.Ping(nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, alice, "pong")
	if n := ts.Router.Lookup("alice").Replayable(); n > 1 {
		t.Fatalf("%d messages kept for replay after ping received, want at most the last pong", n)
	}
}

func TestClientRejoinsNewSession(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RESUME_WINDOW=0")
	alice := dialResuming(t, ts, "alice")
	relaytest.Join(t, alice, "r")
	relaytest.Join(t, alice, "s")
	_ = alice.NetConn().Close()
	ev := relaytest.Recv(t, alice, "resumed")
	if ev.Resumed || len(ev.Rooms) != 2 {
		t.Fatalf("resumed event %+v: want a new session re-joining 2 rooms", ev)
	}
	relaytest.Recv(t, alice, "joined")
	relaytest.Recv(t, alice, "joined")
	relaytest.Eventually(t, 2*time.Second, "alice back in r and s", func() bool {
		return len(ts.Router.Members("r")) == 1 && len(ts.Router.Members("s")) == 1
	})
}

func TestClientCloseDoesNotResume(t *testing.T) {
	ts := relaytest.Start(t)
	alice := dialResuming(t, ts, "alice")
	bob := ts.Dial("bob")
	relaytest.Join(t, bob, "r")
	relaytest.Join(t, alice, "r")
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, bob, "peer_left")
	if ts.Router.Lookup("alice") != nil {
		t.Fatal("a closed client came back")
	}
}
