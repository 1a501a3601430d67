package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// Session resume across nodes (docs/protocol.md section 10, clustering): the
// node holding a session hands it over to the node the client resumes on.

// waitSeries waits until name on n's metrics is want.
func waitSeries(t *testing.T, n *node, name string, want float64) {
	t.Helper()
	relaytest.Eventually(t, 5*time.Second, n.id+" "+name+"="+fmt.Sprint(want), func() bool {
		v, ok := n.Metric(name)
		return ok && v == want
	})
}

func TestResumeOnAnotherNode(t *testing.T) {
	_, nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	alice := relaytest.DialSession(t, n1.Server, "alice")
	alice.Send(`{"type":"join","room":"r"}`)
	alice.Expect("joined")
	bob := n2.Dial("bob")
	carol := n3.Dial("carol")
	for _, c := range []*client.Client{bob, carol} {
		relaytest.Join(t, c, "r")
	}
	alice.Expect("peer_joined")
	alice.Expect("peer_joined")
	relaytest.Eventually(t, 5*time.Second, "memberships replicated", func() bool {
		for _, n := range nodes {
			if n.Cluster.RemoteMembers("r") != 2 {
				return false
			}
		}
		return true
	})

	// Three messages reach alice's socket; she reads one of them.
	for i := 1; i <= 3; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if m := alice.Expect("publish"); m["data"] != 1.0 {
		t.Fatalf("first message %v", m)
	}
	time.Sleep(50 * time.Millisecond) // the other two are written to her socket
	alice.Cut()
	waitSeries(t, n1, "wsrelay_sessions_detached", 1)

	// While detached on n1: routed and acknowledged from every node.
	for i := 4; i <= 5; i++ {
		if err := bob.Publish("r", i, i); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, bob, "ack")
	}
	if err := carol.Direct("alice", "hi", "d"); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, carol, "ack")
	time.Sleep(50 * time.Millisecond) // the frames reach n1

	// She comes back on n2, where bob is.
	oldToken := alice.Token
	alice.Server = n2.Server
	alice.Resume()
	w := alice.Welcome
	if w["resumed"] != true || w["peer"] != "alice" || w["missed"] != 0.0 {
		t.Fatalf("welcome on n2: %v", w)
	}
	if rooms, _ := w["rooms"].([]any); len(rooms) != 1 || rooms[0] != "r" {
		t.Fatalf("rooms %v", w["rooms"])
	}
	if alice.Token == oldToken || len(alice.Token) == 0 || len(alice.Token) > 128 {
		t.Fatalf("token after the resume %q (before %q)", alice.Token, oldToken)
	}
	// Exactly what she missed, in order, then nothing more.
	for i := 2; i <= 5; i++ {
		if m := alice.Expect("publish"); m["data"] != float64(i) || m["from"] != "bob" {
			t.Fatalf("replayed %v, want publish %d from bob", m, i)
		}
	}
	if m := alice.Expect("direct"); m["data"] != "hi" || m["from"] != "carol" {
		t.Fatalf("replayed %v, want carol's direct", m)
	}
	alice.Send(`{"type":"ping","received":` + fmt.Sprint(alice.Received) + `}`)
	if m := alice.Expect("pong"); m["type"] != "pong" {
		t.Fatal(m)
	}

	// Nobody saw her leave or come back.
	for _, c := range []*client.Client{bob, carol} {
		relaytest.QuietType(t, c, "peer_left", 100*time.Millisecond)
		relaytest.QuietType(t, c, "peer_joined", 10*time.Millisecond)
	}
	waitSeries(t, n1, "wsrelay_sessions_detached", 0)
	waitSeries(t, n2, "wsrelay_sessions_resumed_total", 1)
	waitPeer(t, "alice", n2, n1, n3)
	if n2.Router.Lookup("alice") == nil || n1.Router.Lookup("alice") != nil {
		t.Fatal("alice is not registered on n2 only")
	}
	if v, _ := n1.Metric("wsrelay_sessions_expired_total"); v != 0 {
		t.Fatalf("n1 expired %v sessions", v)
	}

	// Live traffic from every node, both ways.
	if err := bob.Publish("r", 6, nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("publish"); m["data"] != 6.0 {
		t.Fatalf("live publish %v", m)
	}
	if err := carol.Direct("alice", "again", nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("direct"); m["data"] != "again" {
		t.Fatalf("live direct %v", m)
	}
	alice.Send(`{"type":"publish","room":"r","data":"back"}`)
	for _, c := range []*client.Client{bob, carol} {
		m := relaytest.Recv(t, c, "publish")
		for m.From == "bob" { // carol has bob's messages first
			m = relaytest.Recv(t, c, "publish")
		}
		if m.From != "alice" || string(m.Data) != `"back"` {
			t.Fatalf("%s got %s", c.PeerID(), m.Raw)
		}
	}

	// The old token is spent on every node.
	for _, n := range []*node{n1, n3} {
		again := &relaytest.Resumer{T: t, Server: n.Server}
		again.ResumeAs(oldToken, 0, "")
		if again.Welcome["resumed"] != false || again.Peer == "alice" {
			t.Fatalf("the old token on %s: %v", n.id, again.Welcome)
		}
	}
}

// A resume that lands on a node while the session's old connection, on
// another node, is still open: the old one is closed with 4001 "resumed".
func TestResumeOnAnotherNodeWhileConnected(t *testing.T) {
	_, nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	alice := relaytest.DialSession(t, n1.Server, "alice")
	alice.Send(`{"type":"join","room":"r"}`)
	alice.Expect("joined")
	bob := n2.Dial("bob")
	relaytest.Join(t, bob, "r")
	alice.Expect("peer_joined")
	old := alice.RC

	alice.Server = n2.Server
	alice.Resume()
	if alice.Welcome["resumed"] != true || alice.Welcome["peer"] != "alice" {
		t.Fatalf("welcome %v", alice.Welcome)
	}
	if code := old.ReadClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("old connection closed with %d, want 4001", code)
	}
	relaytest.QuietType(t, bob, "peer_left", 200*time.Millisecond)
	if err := bob.Direct("alice", 1, nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("direct"); m["data"] != 1.0 {
		t.Fatalf("direct after the resume %v", m)
	}
}

// A token that no node holds (expired, or from a node that is gone) gets a
// new session at once, without waiting for the handover's timeout.
func TestResumeUnknownOnAnotherNode(t *testing.T) {
	_, nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	alice := relaytest.DialSession(t, n1.Server, "alice")
	alice.Send(`{"type":"ping"}`)
	alice.Expect("pong")
	token := alice.Token

	// A made-up token of n1's: its tag, another secret.
	fake := []byte(token)
	if fake[30] == 'A' {
		fake[30] = 'B'
	} else {
		fake[30] = 'A'
	}
	start := time.Now()
	other := &relaytest.Resumer{T: t, Server: n2.Server}
	other.ResumeAs(string(fake), 0, "")
	if other.Welcome["resumed"] != false {
		t.Fatalf("a made-up token resumed: %v", other.Welcome)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a made-up token took %v", d)
	}
	waitSeries(t, n2, "wsrelay_sessions_resume_failed_total", 1)
	alice.Send(`{"type":"ping"}`)
	alice.Expect("pong") // alice's session was not touched
}

// With auth on, a resume on another node must authenticate as the session's
// peer id: another peer's credential, or none, gets 401 there, and does not
// use the token up.
func TestResumeOnAnotherNodeNeedsSamePeer(t *testing.T) {
	const secret = "cluster-resume-test-secret-0123456789"
	ns := startNATS(t, 0)
	env := []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET=" + secret}
	n1 := startNode(t, natsURL(ns), "n1", env...)
	n2 := startNode(t, natsURL(ns), "n2", env...)
	waitMesh(t, n1, n2)
	token := func(sub string) string {
		return relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(secret), relaytest.JWTClaims(sub))
	}
	alice := &relaytest.Resumer{T: t, Server: n1.Server}
	alice.Connect("/ws?token=" + token("alice"))
	alice.Cut()
	waitSeries(t, n1, "wsrelay_sessions_detached", 1)

	path := func(cred string) string {
		p := fmt.Sprintf("/ws?resume=%s&received=0", alice.Token)
		if cred != "" {
			p += "&token=" + cred
		}
		return p
	}
	for _, p := range []string{path(token("bob")), path("")} {
		if _, err := relaytest.TryRawDial(n2.Addr().String(), p); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("resume on n2 with another peer's or no credential: %v, want 401", err)
		}
	}
	alice.Server = n2.Server
	alice.Connect(path(token("alice")))
	if alice.Welcome["resumed"] != true || alice.Welcome["peer"] != "alice" {
		t.Fatalf("welcome %v", alice.Welcome)
	}
}

// BenchmarkResumeOnAnotherNode measures a resume that lands on another node
// than the one holding the session, its old connection still open: the
// upgrade request, the handover through NATS (the old node closes the old
// connection with 4001 and sends the session), and the welcome. "same node"
// is the resume without a handover, for comparison.
func BenchmarkResumeOnAnotherNode(b *testing.B) {
	_, nodes := startCluster(b, 2)
	for _, tc := range []struct {
		name string
		next func(i int) *node
	}{
		{"other node", func(i int) *node { return nodes[(i+1)%2] }},
		{"same node", func(int) *node { return nodes[0] }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a := relaytest.DialSession(b, nodes[0].Server, "alice")
			a.Send(`{"type":"join","room":"r"}`)
			a.Expect("joined")
			b.ResetTimer()
			for i := range b.N {
				old := a.RC
				a.Server = tc.next(i).Server
				a.Resume()
				if a.Welcome["resumed"] != true {
					b.Fatalf("resume %d: %v", i, a.Welcome)
				}
				_ = old.Close()
			}
		})
	}
}

// What overflowed the queue while the session was detached on one node is
// reported as missed when it resumes on another.
func TestResumeOnAnotherNodeMissed(t *testing.T) {
	ns := startNATS(t, 0)
	n1 := startNode(t, natsURL(ns), "n1", "WSRELAY_QUEUE_SIZE=4")
	n2 := startNode(t, natsURL(ns), "n2", "WSRELAY_QUEUE_SIZE=4")
	waitMesh(t, n1, n2)
	alice := relaytest.DialSession(t, n1.Server, "alice")
	alice.Send(`{"type":"join","room":"r"}`)
	alice.Expect("joined")
	bob := n2.Dial("bob")
	relaytest.Join(t, bob, "r")
	alice.Expect("peer_joined")
	alice.Cut()
	waitSeries(t, n1, "wsrelay_sessions_detached", 1)
	for i := 1; i <= 10; i++ {
		if err := bob.Publish("r", i, i); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, bob, "ack")
	}
	waitSeries(t, n1, `wsrelay_messages_dropped_total{reason="queue_full"}`, 6)

	alice.Server = n2.Server
	alice.Resume()
	if alice.Welcome["resumed"] != true || alice.Welcome["missed"] != 6.0 {
		t.Fatalf("welcome on n2: %v, want resumed with 6 missed", alice.Welcome)
	}
	for i := 1; i <= 4; i++ {
		if m := alice.Expect("publish"); m["data"] != float64(i) {
			t.Fatalf("replayed %v, want publish %d", m, i)
		}
	}
	if err := bob.Publish("r", "live", nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("publish"); m["data"] != "live" {
		t.Fatalf("after the replay %v, want the live publish", m)
	}
}
