package loop_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// Session resume (docs/protocol.md section 10), through a real server and raw
// WebSocket clients that count the data messages they read, exactly as the
// contract says a client counts.

// metricValue reads one series from the server's metrics.
func metricValue(t *testing.T, ts *relaytest.Server, name string) float64 {
	t.Helper()
	v, ok := ts.Metric(name)
	if !ok {
		t.Fatalf("no series %s", name)
	}
	return v
}

func waitMetric(t *testing.T, ts *relaytest.Server, name string, want float64) {
	t.Helper()
	relaytest.Eventually(t, 3*time.Second, name+"="+fmt.Sprint(want), func() bool {
		return metricValue(t, ts, name) == want
	})
}

// roomPair starts a server with env, a resumer alice and a client bob,
// both members of room r.
func roomPair(t *testing.T, env ...string) (*relaytest.Server, *relaytest.Resumer, *client.Client) {
	t.Helper()
	ts := relaytest.Start(t, append([]string{"WSRELAY_RATE_MSGS=0"}, env...)...)
	alice := relaytest.DialSession(t, ts, "alice")
	alice.Send(`{"type":"join","room":"r"}`)
	alice.Expect("joined")
	bob := ts.Dial("bob")
	relaytest.Join(t, bob, "r")
	alice.Expect("peer_joined")
	return ts, alice, bob
}

func TestResumeAfterAbruptClose(t *testing.T) {
	ts, alice, bob := roomPair(t)
	oldToken := alice.Token
	if len(oldToken) == 0 || len(oldToken) > 128 || strings.ContainsAny(oldToken, "+/=") {
		t.Fatalf("token %q: want 1-128 URL-safe characters", oldToken)
	}
	// Five messages reach alice's socket; she reads only two of them.
	for i := 1; i <= 5; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	alice.Expect("publish")
	alice.Expect("publish")
	time.Sleep(50 * time.Millisecond) // the other three are written to her socket
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)

	// While detached: no peer_left, and messages to alice are still routed
	// and acknowledged.
	for i := 6; i <= 7; i++ {
		if err := bob.Publish("r", i, fmt.Sprint("p", i)); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, bob, "ack"); string(m.ID) != fmt.Sprintf(`"p%d"`, i) {
			t.Fatalf("ack %s", m.Raw)
		}
	}
	if err := bob.Direct("alice", "hi", "d1"); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, bob, "ack")
	relaytest.QuietType(t, bob, "peer_left", 200*time.Millisecond)

	alice.Resume()
	w := alice.Welcome
	if w["resumed"] != true || w["peer"] != "alice" || w["missed"] != 0.0 {
		t.Fatalf("welcome of the resume: %v", w)
	}
	if rooms, _ := json.Marshal(w["rooms"]); string(rooms) != `["r"]` {
		t.Fatalf("rooms %s, want [\"r\"]", rooms)
	}
	if alice.Token == oldToken || alice.Token == "" {
		t.Fatal("a resume must hand out a new token")
	}
	// Exactly what she had not read, in order, then the rest.
	for i := 3; i <= 7; i++ {
		m := alice.Expect("publish")
		if m["data"] != float64(i) || m["from"] != "bob" {
			t.Fatalf("replayed %v, want publish %d", m, i)
		}
	}
	if m := alice.Expect("direct"); m["data"] != "hi" {
		t.Fatalf("got %v", m)
	}
	// Live traffic goes on, both ways.
	if err := bob.Publish("r", 8, nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("publish"); m["data"] != 8.0 {
		t.Fatalf("live %v", m)
	}
	alice.Send(`{"type":"publish","room":"r","data":"back"}`)
	if m := relaytest.Recv(t, bob, "publish"); string(m.Data) != `"back"` {
		t.Fatalf("bob got %s", m.Raw)
	}
	waitMetric(t, ts, "wsrelay_sessions_detached", 0)
	if v := metricValue(t, ts, "wsrelay_sessions_resumed_total"); v != 1 {
		t.Fatalf("resumed_total %v", v)
	}

	// The old token is used up: it gets an ordinary new session.
	other := &relaytest.Resumer{T: t, Server: ts}
	other.ResumeAs(oldToken, 0, "")
	if other.Welcome["resumed"] != false || other.Welcome["peer"] == "alice" {
		t.Fatalf("a used token: %v", other.Welcome)
	}
	if v := metricValue(t, ts, "wsrelay_sessions_resume_failed_total"); v != 1 {
		t.Fatalf("resume_failed_total %v", v)
	}
	relaytest.QuietType(t, bob, "peer_left", 100*time.Millisecond)
}

func TestResumeMissedWhenQueueOverflowed(t *testing.T) {
	ts, alice, bob := roomPair(t, "WSRELAY_QUEUE_SIZE=4")
	// She acknowledges everything so far, then loses her socket.
	alice.Send(fmt.Sprintf(`{"type":"ping","received":%d}`, alice.Received))
	alice.Expect("pong")
	alice.Send(fmt.Sprintf(`{"type":"ping","received":%d}`, alice.Received))
	alice.Expect("pong")
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	for i := 1; i <= 10; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	relaytest.Eventually(t, 2*time.Second, "drops", func() bool {
		return metricValue(t, ts, `wsrelay_messages_dropped_total{reason="queue_full"}`) == 6
	})
	alice.Resume()
	if alice.Welcome["resumed"] != true || alice.Welcome["missed"] != 6.0 {
		t.Fatalf("welcome %v, want resumed with missed 6", alice.Welcome)
	}
	for i := 1; i <= 4; i++ {
		if m := alice.Expect("publish"); m["data"] != float64(i) {
			t.Fatalf("got %v, want publish %d", m, i)
		}
	}
	_ = ts
}

func TestResumeCloseNormalEndsSession(t *testing.T) {
	for _, code := range []int{1000, 1001} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			ts, alice, bob := roomPair(t)
			if err := alice.RC.SendFrame(true, frame.OpClose, frame.AppendCloseFrame(nil, code, "")[2:]); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			m := relaytest.Recv(t, bob, "peer_left")
			if m.Peer != "alice" || time.Since(start) > time.Second {
				t.Fatalf("peer_left %s after %v", m.Raw, time.Since(start))
			}
			again := &relaytest.Resumer{T: t, Server: ts}
			again.ResumeAs(alice.Token, alice.Received, "")
			if again.Welcome["resumed"] != false {
				t.Fatalf("a session closed with %d was resumed: %v", code, again.Welcome)
			}
		})
	}
}

func TestResumeOtherCloseCodeDetaches(t *testing.T) {
	ts, alice, bob := roomPair(t)
	if err := alice.RC.SendFrame(true, frame.OpClose, frame.AppendCloseFrame(nil, 4000, "")[2:]); err != nil {
		t.Fatal(err)
	}
	if code := alice.RC.ReadClose(t, 2*time.Second); code != 4000 {
		t.Fatalf("close answered with %d", code)
	}
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	relaytest.QuietType(t, bob, "peer_left", 200*time.Millisecond)
	alice.Resume()
	if alice.Welcome["resumed"] != true {
		t.Fatalf("welcome %v", alice.Welcome)
	}
}

func TestResumeExpiry(t *testing.T) {
	ts, alice, bob := roomPair(t, "WSRELAY_RESUME_WINDOW=400ms")
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	cut := time.Now()
	for i := 1; i <= 3; i++ {
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	discardedBefore := metricValue(t, ts, "wsrelay_messages_discarded_at_close_total")
	m := relaytest.Recv(t, bob, "peer_left")
	if el := time.Since(cut); m.Peer != "alice" || el < 300*time.Millisecond || el > 1500*time.Millisecond {
		t.Fatalf("peer_left %s after %v, want after the 400ms window", m.Raw, el)
	}
	waitMetric(t, ts, "wsrelay_sessions_expired_total", 1)
	waitMetric(t, ts, "wsrelay_sessions_detached", 0)
	if d := metricValue(t, ts, "wsrelay_messages_discarded_at_close_total") - discardedBefore; d != 3 {
		t.Fatalf("discarded %v, want the 3 queued messages", d)
	}
	// The id is free, the token dead.
	if ts.Router.Lookup("alice") != nil {
		t.Fatal("expired peer still registered")
	}
	alice.Resume()
	if alice.Welcome["resumed"] != false {
		t.Fatalf("expired session resumed: %v", alice.Welcome)
	}
}

func TestResumeTakesOverOpenSocket(t *testing.T) {
	ts, alice, bob := roomPair(t)
	old := alice.RC
	token, received := alice.Token, alice.Received
	if err := bob.Publish("r", "x", nil); err != nil {
		t.Fatal(err)
	}
	alice.Expect("publish")
	alice.ResumeAs(token, received, "") // she never read it on the old socket: replayed
	if alice.Welcome["resumed"] != true {
		t.Fatalf("welcome %v", alice.Welcome)
	}
	if m := alice.Expect("publish"); m["data"] != "x" {
		t.Fatalf("replayed %v", m)
	}
	// The old socket is closed 4001 "resumed".
	for {
		op, p, err := old.ReadFrame(2 * time.Second)
		if err != nil {
			t.Fatalf("old socket: %v", err)
		}
		if op == frame.OpClose {
			if code := int(p[0])<<8 | int(p[1]); code != 4001 || string(p[2:]) != "resumed" {
				t.Fatalf("old socket closed with %d %q, want 4001 resumed", code, p[2:])
			}
			break
		}
	}
	// What still comes on the old socket is not the session's any more.
	_ = old.SendFrame(true, frame.OpText, []byte(`{"type":"publish","room":"r","data":"stale"}`))
	relaytest.QuietType(t, bob, "publish", 100*time.Millisecond)
	relaytest.QuietType(t, bob, "peer_left", 300*time.Millisecond)
	relaytest.QuietType(t, bob, "peer_joined", 10*time.Millisecond)
	if err := bob.Direct("alice", "still here", nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("direct"); m["data"] != "still here" {
		t.Fatalf("got %v", m)
	}
	_ = ts
}

func TestResumeNeedsSamePeer(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret)
	aliceTok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), relaytest.JWTClaims("alice"))
	bobTok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), relaytest.JWTClaims("bob"))
	alice := &relaytest.Resumer{T: t, Server: ts}
	alice.Connect("/ws?token=" + aliceTok)
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)

	path := func(tok string) string {
		return fmt.Sprintf("/ws?resume=%s&received=0&token=%s", alice.Token, tok)
	}
	for _, p := range []string{path(bobTok), fmt.Sprintf("/ws?resume=%s&received=0", alice.Token)} {
		if _, err := relaytest.TryRawDial(ts.Addr().String(), p); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("resume with another peer's or no credential: %v, want 401", err)
		}
	}
	// The refusals did not use the token up.
	alice.Connect(path(aliceTok))
	if alice.Welcome["resumed"] != true || alice.Welcome["peer"] != "alice" {
		t.Fatalf("welcome %v", alice.Welcome)
	}
}

func TestResumeCountTooLarge(t *testing.T) {
	ts, alice, _ := roomPair(t)
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	alice.ResumeAs(alice.Token, alice.Received+1, "")
	if alice.Welcome["resumed"] != false {
		t.Fatalf("received past what was sent: %v", alice.Welcome)
	}
}

func TestResumeOff(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RESUME_WINDOW=0")
	a := &relaytest.Resumer{T: t, Server: ts}
	a.Connect("/ws?peer=a")
	if _, has := a.Welcome["resume"]; has {
		t.Fatalf("welcome with resume off: %v", a.Welcome)
	}
	if _, has := a.Welcome["resumed"]; has {
		t.Fatalf("welcome with resume off: %v", a.Welcome)
	}
	// A ping's received is ignored like any unknown field.
	a.Send(`{"type":"ping","received":"x"}`)
	a.Expect("pong")
	a.Connect("/ws?peer=b&resume=whatever&received=0")
	if a.Peer != "b" {
		t.Fatalf("welcome %v", a.Welcome)
	}
}

// The last messages of a burst, written too soon after an acknowledging
// ping to carry one, get a ping of their own shortly after (the sweeper,
// conn.Env.AckLater): they leave the replay buffer well before the
// heartbeat, with no further message to carry a ping.
func TestResumeAckPingAfterBurst(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_PING_INTERVAL=25s") // no heartbeat ping during the test
	alice := ts.Dial("alice")                             // answers pings
	bob := ts.Dial("bob")
	// Past the sweeper's first look at the new connections, whose ping
	// would acknowledge what was written before it.
	time.Sleep(600 * time.Millisecond)
	for i := range 3 {
		if err := bob.Direct("alice", i, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // a write each, the first with a ping
	}
	for range 3 {
		relaytest.Recv(t, alice, "direct")
	}
	a := ts.Router.Lookup("alice")
	relaytest.Eventually(t, time.Second, "alice's replay buffer empty well before the heartbeat", func() bool {
		return a.Replayable() == 0
	})
}

// Written messages leave the replay buffer a round trip after they were
// written, not a heartbeat later: the relay appends a ping to the write,
// and the client's pong acknowledges them. A client that does not answer
// pings keeps them held until it acknowledges with received.
func TestResumeAckPingReleasesSoon(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_PING_INTERVAL=25s") // no heartbeat ping during the test
	alice := ts.Dial("alice")                             // answers pings
	bob := ts.Dial("bob")
	carol := relaytest.DialSession(t, ts, "carol") // reads, never answers a ping
	for i := range 20 {
		if err := bob.Direct("alice", i, nil); err != nil {
			t.Fatal(err)
		}
		if i < 5 {
			if err := bob.Direct("carol", i, nil); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 20 {
		relaytest.Recv(t, alice, "direct")
	}
	pinged := false
	for range 5 {
		for {
			op, p, err := carol.RC.ReadFrame(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if op == frame.OpPing {
				pinged = len(p) == 8
				continue
			}
			break
		}
		carol.Received++
	}
	a, c := ts.Router.Lookup("alice"), ts.Router.Lookup("carol")
	relaytest.Eventually(t, time.Second, "alice's replay buffer empty well before the heartbeat", func() bool {
		return a.Replayable() == 0
	})
	if !pinged {
		// The ping may trail the last message by a few milliseconds.
		if op, p, err := carol.RC.ReadFrame(time.Second); err != nil || op != frame.OpPing || len(p) != 8 {
			t.Fatalf("carol got no acknowledging ping: op %d % x %v", op, p, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := c.Replayable(); n != 5 {
		t.Fatalf("carol answered no ping: Replayable = %d, want 5 (nothing acknowledged)", n)
	}
	carol.Send(`{"type":"ping","received":5}`)
	carol.Expect("pong")
	if n := c.Replayable(); n != 1 {
		t.Fatalf("after received 5: Replayable = %d, want 1 (the pong)", n)
	}
}

func TestResumeAfterLivenessTimeout(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_PING_INTERVAL=200ms", "WSRELAY_CLIENT_TIMEOUT=1s")
	bob := ts.Dial("bob")
	relaytest.Join(t, bob, "r")
	alice := relaytest.DialSession(t, ts, "alice") // never answers pings
	alice.Send(`{"type":"join","room":"r"}`)
	alice.Expect("joined")
	relaytest.Recv(t, bob, "peer_joined")
	if code := alice.RC.ReadClose(t, 3*time.Second); code != 1000 {
		t.Fatalf("closed with %d", code)
	}
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	relaytest.QuietType(t, bob, "peer_left", 200*time.Millisecond)
	alice.Resume()
	if alice.Welcome["resumed"] != true {
		t.Fatalf("welcome %v", alice.Welcome)
	}
}

func TestResumeUpgradeRefusalsStayHTTP(t *testing.T) {
	ts := relaytest.Start(t)
	resp, err := http.Get(ts.Base + "/ws?resume=abc&received=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET with resume: %d, want 400", resp.StatusCode)
	}
}

// TestResumeTokenNeverLogged: with debug logging, neither a session's token
// nor a resume request's token appears in the log, whatever the outcome.
func TestResumeTokenNeverLogged(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := relaytest.StartOpts(t, relaytest.Options{Logger: log}, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret)
	aliceTok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), relaytest.JWTClaims("alice"))
	bobTok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), relaytest.JWTClaims("bob"))
	alice := &relaytest.Resumer{T: t, Server: ts}
	alice.Connect("/ws?token=" + aliceTok)
	tokens := []string{alice.Token}
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	_, _ = relaytest.TryRawDial(ts.Addr().String(), fmt.Sprintf("/ws?resume=%s&received=0&token=%s", alice.Token, bobTok)) // 401
	alice.Connect(fmt.Sprintf("/ws?resume=%s&received=0&token=%s", alice.Token, aliceTok))
	tokens = append(tokens, alice.Token)
	other := &relaytest.Resumer{T: t, Server: ts}
	other.Connect(fmt.Sprintf("/ws?resume=%s&received=0&token=%s", tokens[0], aliceTok)) // used: new session
	tokens = append(tokens, other.Token)
	out := buf.String()
	if !strings.Contains(out, "upgrade refused") {
		t.Fatalf("the 401 was not logged:\n%s", out)
	}
	for _, tok := range tokens {
		if strings.Contains(out, tok) {
			t.Fatalf("the log shows a resume token:\n%s", out)
		}
	}
}
