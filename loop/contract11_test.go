package loop_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/stats"
)

// Rules of version 1.1 (docs/protocol.md sections 9 to 14) that no other test
// checks through a real server: flow control's switch and bounds, the
// counting, replay and ending rules of session resume, close reasons on the
// wire, and compression's threshold.

// idleMember dials peer as a raw member of room r that never reads, with a
// small receive buffer so that its queue fills soon.
func idleMember(t *testing.T, ts *relaytest.Server, peer string) *relaytest.RawConn {
	t.Helper()
	rc := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer="+peer)
	t.Cleanup(func() { rc.Close() })
	if tc, ok := rc.Conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	if err := rc.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestFlowControlSwitchAndBound: a member that stopped reading holds a
// bursting publisher back for about STALL_TIMEOUT in all, and only once: a
// second burst goes through without a pause, and what does not fit its
// queue is dropped (docs/protocol.md section 9). Once it has read its queue
// empty it is keeping up again, and a third burst is held back again. With
// WSRELAY_FLOW_CONTROL=false it never holds the publisher back.
func TestFlowControlSwitchAndBound(t *testing.T) {
	for _, flow := range []bool{true, false} {
		t.Run(fmt.Sprint("FLOW_CONTROL=", flow), func(t *testing.T) {
			ts := relaytest.Start(t, fmt.Sprint("WSRELAY_FLOW_CONTROL=", flow), "WSRELAY_STALL_TIMEOUT=300ms",
				"WSRELAY_RATE_MSGS=0", "WSRELAY_QUEUE_SIZE=16", "WSRELAY_CLIENT_TIMEOUT=10m")
			pub := ts.Dial("pub")
			relaytest.Join(t, pub, "r")
			idle := idleMember(t, ts, "idle")
			relaytest.Recv(t, pub, "peer_joined")

			burst := func(n int) time.Duration {
				t.Helper()
				start := time.Now()
				relaytest.PublishBurst(t, pub, "r", n, 8<<10)
				relaytest.AckLast(t, pub, 30*time.Second)
				return time.Since(start)
			}
			// wsrelay_flow_paused_connections shows the paused publisher
			// while it waits.
			stop, seen := make(chan struct{}), make(chan float64, 1)
			stopPoll := sync.OnceFunc(func() { close(stop) })
			t.Cleanup(stopPoll) // when the burst fails
			go func() {
				most := 0.0
				for {
					select {
					case <-stop:
						seen <- most
						return
					case <-time.After(2 * time.Millisecond):
					}
					var buf bytes.Buffer
					ts.Metrics.WritePrometheus(&buf)
					for line := range strings.Lines(buf.String()) {
						if v, ok := strings.CutPrefix(line, "wsrelay_flow_paused_connections "); ok {
							var f float64
							_, _ = fmt.Sscan(v, &f)
							most = max(most, f)
						}
					}
				}
			}()
			burst(1000) // 8 MB: more than the loopback socket buffers take
			stopPoll()
			if most, want := <-seen, map[bool]float64{true: 1, false: 0}[flow]; most != want {
				t.Errorf("wsrelay_flow_paused_connections reached %v during the burst, want %v", most, want)
			}
			if now := metricValue(t, ts, "wsrelay_flow_paused_connections"); now != 0 {
				t.Errorf("wsrelay_flow_paused_connections %v after the burst", now)
			}
			pauses := ts.Stats.FlowPauses()
			if flow && pauses == 0 || !flow && pauses != 0 {
				t.Fatalf("wsrelay_flow_pauses_total %d with flow control %v", pauses, flow)
			}
			if ts.Stats.DroppedBy(stats.DropQueueFull) == 0 {
				t.Fatal("no queue_full drop for a member that never reads")
			}
			// The pauses ended once the member stalled: after STALL_TIMEOUT
			// (300 ms), not much later.
			paused := metricValue(t, ts, "wsrelay_flow_paused_seconds_total")
			if flow && (paused < 0.25 || paused > 1.5) || !flow && paused != 0 {
				t.Fatalf("paused %.3f s in all, with a 300 ms STALL_TIMEOUT", paused)
			}
			// Stalled, the member holds no one back any more.
			dropped := ts.Stats.DroppedBy(stats.DropQueueFull)
			burst(100)
			if got := ts.Stats.FlowPauses(); got != pauses {
				t.Fatalf("a second burst paused the publisher %d more times", got-pauses)
			}
			if got := ts.Stats.DroppedBy(stats.DropQueueFull) - dropped; got != 100 {
				t.Fatalf("second burst: %d queue_full drops, want all 100", got)
			}
			// Once the member read its queue empty it keeps up again, and a
			// new backlog holds the publisher back again.
			for seen := 0; seen < 1100; {
				f := readData(t, idle)
				var m struct {
					Type    string
					Dropped int
				}
				_ = json.Unmarshal(f.payload, &m)
				switch m.Type {
				case "publish":
					seen++
				case "overflow":
					seen += m.Dropped
				}
			}
			burst(1000)
			if got := ts.Stats.FlowPauses(); flow && got == pauses || !flow && got != 0 {
				t.Fatalf("a third burst, after the member caught up: %d pauses in all, %d before", got, pauses)
			}
		})
	}
}

// TestFlowControlDetachedNeverPauses: a detached session's queue fills while
// the publisher goes on unhindered (docs/protocol.md section 9: detached
// sessions never pause a sender), and what does not fit is dropped and
// counted as queue_full.
func TestFlowControlDetachedNeverPauses(t *testing.T) {
	ts, alice, bob := roomPair(t, "WSRELAY_QUEUE_SIZE=8", "WSRELAY_STALL_TIMEOUT=10s")
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	start := time.Now()
	const n = 100
	for i := range n {
		var id any
		if i == n-1 {
			id = "last"
		}
		if err := bob.Publish("r", i, id); err != nil {
			t.Fatal(err)
		}
	}
	if m := relaytest.Recv(t, bob, "ack"); string(m.ID) != `"last"` {
		t.Fatalf("bob got %s", m.Raw)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("bob's burst took %v: a detached member held him back", el)
	}
	if got := ts.Stats.FlowPauses(); got != 0 {
		t.Fatalf("%d pauses for a detached member", got)
	}
	if got := ts.Stats.DroppedBy(stats.DropQueueFull); got < n-8 {
		t.Fatalf("queue_full drops %d, want at least %d", got, n-8)
	}
}

// rawFrame is one server frame as a client read it.
type rawFrame struct {
	op      byte
	payload []byte
}

// readData reads the next data frame (text or binary) of rc, skipping
// pings.
func readData(t *testing.T, rc *relaytest.RawConn) rawFrame {
	t.Helper()
	for {
		op, p, err := rc.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch op {
		case frame.OpPing, frame.OpPong:
			continue
		case frame.OpText, frame.OpBinary:
			return rawFrame{op, p}
		default:
			t.Fatalf("frame op %d %q, want data", op, p)
		}
	}
}

// TestResumeCountsEveryDataMessage: acks, errors, pongs, binary frames,
// room and direct messages are all data messages (docs/protocol.md section 10):
// a client that received N of them gets exactly the ones after N on
// resume, with the original opcodes and bytes.
func TestResumeCountsEveryDataMessage(t *testing.T) {
	ts, alice, bob := roomPair(t)
	alice.Send(`{"type":"publish","room":"r","data":1,"id":"a1"}`) // ack
	relaytest.Recv(t, bob, "publish")
	alice.Send(`{"type":"shout","id":2}`) // error unknown_type
	alice.Send(`{"type":"ping"}`)         // pong
	if err := bob.SendBinary(frame.BinPublish, 7, 3, "r", []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Publish("r", "text", nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.Direct("alice", "direct", "d"); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, bob, "ack")

	// Alice's socket gets all six; she counts only the ack as received.
	var got []rawFrame
	for range 6 {
		got = append(got, readData(t, alice.RC))
	}
	wantTypes := []string{"ack", "error", "pong", "", "publish", "direct"}
	for i, f := range got {
		var m struct{ Type string }
		if f.op == frame.OpBinary {
			if wantTypes[i] != "" {
				t.Fatalf("message %d is binary, want %s", i, wantTypes[i])
			}
			continue
		}
		if err := json.Unmarshal(f.payload, &m); err != nil || m.Type != wantTypes[i] {
			t.Fatalf("message %d: %s, want %s", i, f.payload, wantTypes[i])
		}
	}
	received := alice.Received + 1
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	alice.ResumeAs(alice.Token, received, "")
	if alice.Welcome["resumed"] != true || alice.Welcome["missed"] != 0.0 {
		t.Fatalf("welcome %v", alice.Welcome)
	}
	for i, want := range got[1:] {
		f := readData(t, alice.RC)
		if f.op != want.op || !bytes.Equal(f.payload, want.payload) {
			t.Fatalf("replayed message %d: op %d %q, want op %d %q", i+2, f.op, f.payload, want.op, want.payload)
		}
	}
	// Then live traffic, nothing more of the past.
	if err := bob.Publish("r", "live", nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("publish"); m["data"] != "live" {
		t.Fatalf("after the replay: %v", m)
	}
}

// waitWritten waits until everything routed to peer was written to its
// socket.
func waitWritten(t *testing.T, ts *relaytest.Server, peer string) {
	t.Helper()
	c := ts.Router.Lookup(peer)
	relaytest.Eventually(t, 5*time.Second, peer+"'s queue written", func() bool {
		return c.Queued() == 0 && c.InFlight() == 0
	})
}

// TestResumeReplayBufferHoldsQueueSize: the server keeps at most QUEUE_SIZE
// unacknowledged messages for a replay; a resume after more than that went
// out reports the rest as missed and replays the last QUEUE_SIZE.
func TestResumeReplayBufferHoldsQueueSize(t *testing.T) {
	ts, alice, bob := roomPair(t, "WSRELAY_QUEUE_SIZE=4") // alice received joined and peer_joined
	for i := 1; i <= 10; i++ {
		if err := bob.Publish("r", i, i); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, bob, "ack")
		waitWritten(t, ts, "alice") // no drop: each goes out before the next
	}
	if d := ts.Stats.DroppedBy(stats.DropQueueFull); d != 0 {
		t.Fatalf("%d drops", d)
	}
	alice.Cut() // she read none of the ten
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	alice.Resume()
	if alice.Welcome["resumed"] != true || alice.Welcome["missed"] != 6.0 {
		t.Fatalf("welcome %v, want resumed with missed 6", alice.Welcome)
	}
	for i := 7; i <= 10; i++ {
		if m := alice.Expect("publish"); m["data"] != float64(i) {
			t.Fatalf("replayed %v, want publish %d", m, i)
		}
	}
}

// TestResumePingReceivedAcknowledges: {"type":"ping","received":N}
// acknowledges the messages up to N, which the server then no longer
// holds: a resume from before N reports them missed and replays the rest.
func TestResumePingReceivedAcknowledges(t *testing.T) {
	ts, alice, bob := roomPair(t) // messages 1 and 2: joined, peer_joined
	for i := 1; i <= 5; i++ {     // messages 3 to 7
		if err := bob.Publish("r", i, nil); err != nil {
			t.Fatal(err)
		}
		alice.Expect("publish")
	}
	alice.Send(`{"type":"ping","received":7}`)
	pong := alice.ReadRaw() // message 8, not counted
	if pong["type"] != "pong" {
		t.Fatalf("got %v, want pong", pong)
	}
	if err := bob.Publish("r", 6, "p6"); err != nil { // message 9
		t.Fatal(err)
	}
	relaytest.Recv(t, bob, "ack")
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	alice.ResumeAs(alice.Token, 4, "")
	if alice.Welcome["resumed"] != true || alice.Welcome["missed"] != 3.0 {
		t.Fatalf("welcome %v, want resumed with missed 3 (messages 5 to 7 were acknowledged)", alice.Welcome)
	}
	if m := alice.Expect("pong"); m["time"] != pong["time"] {
		t.Fatalf("replayed %v, want the pong %v", m, pong)
	}
	if m := alice.Expect("publish"); m["data"] != 6.0 {
		t.Fatalf("replayed %v, want publish 6", m)
	}
}

// TestResumeEndsOnViolation: a close for a protocol, UTF-8 or size
// violation ends the session (docs/protocol.md section 10): the members get
// peer_left at once and the token is dead. (1008 is in
// TestRateLimitAbuseCloses1008.)
func TestResumeEndsOnViolation(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
		code int
	}{
		{"reserved opcode", frame.AppendMaskedFrame(nil, true, 3, [4]byte{1, 2, 3, 4}, []byte("x")), 1002},
		{"invalid UTF-8", frame.AppendMaskedFrame(nil, true, frame.OpText, [4]byte{1, 2, 3, 4}, []byte("ok\xff")), 1007},
		{"over MAX_MESSAGE_BYTES", frame.AppendMaskedFrame(nil, true, frame.OpText, [4]byte{1, 2, 3, 4}, bytes.Repeat([]byte("x"), 1025)), 1009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, alice, bob := roomPair(t, "WSRELAY_MAX_MESSAGE_BYTES=1024")
			if _, err := alice.RC.Write(tc.wire); err != nil {
				t.Fatal(err)
			}
			if code := alice.RC.ReadClose(t, 5*time.Second); code != tc.code {
				t.Fatalf("closed with %d, want %d", code, tc.code)
			}
			start := time.Now()
			if m := relaytest.Recv(t, bob, "peer_left"); m.Peer != "alice" || time.Since(start) > 2*time.Second {
				t.Fatalf("bob got %s after %v", m.Raw, time.Since(start))
			}
			if v := metricValue(t, ts, "wsrelay_sessions_detached"); v != 0 {
				t.Fatalf("%v sessions detached", v)
			}
			again := &relaytest.Resumer{T: t, Server: ts}
			again.ResumeAs(alice.Token, alice.Received, "")
			if again.Welcome["resumed"] != false {
				t.Fatalf("a session closed with %d was resumed: %v", tc.code, again.Welcome)
			}
		})
	}
}

// TestResumeEndsWhenReplaced: a new connection (not a resume) with the
// peer id of a session replaces it, connected (close 4001 "replaced") or
// detached, and the old session's token is dead; the new connection gets
// none of the old session's messages.
func TestResumeEndsWhenReplaced(t *testing.T) {
	t.Run("connected", func(t *testing.T) {
		ts, alice, _ := roomPair(t)
		fresh := ts.Dial("alice")
		if w := fresh.Welcome(); w.Resumed {
			t.Fatalf("welcome %s", w.Raw)
		}
		if code, reason := readClose(t, alice.RC, 5*time.Second); code != 4001 || reason != "replaced" {
			t.Fatalf("old connection closed with %d %q, want 4001 replaced", code, reason)
		}
		again := &relaytest.Resumer{T: t, Server: ts}
		again.ResumeAs(alice.Token, alice.Received, "")
		if again.Welcome["resumed"] != false {
			t.Fatalf("a replaced session was resumed: %v", again.Welcome)
		}
	})
	t.Run("detached", func(t *testing.T) {
		ts, alice, bob := roomPair(t)
		alice.Cut()
		waitMetric(t, ts, "wsrelay_sessions_detached", 1)
		if err := bob.Direct("alice", "queued", 1); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, bob, "ack")
		fresh := ts.Dial("alice")
		if w := fresh.Welcome(); w.Resumed || w.Peer != "alice" {
			t.Fatalf("welcome %s", w.Raw)
		}
		waitMetric(t, ts, "wsrelay_sessions_detached", 0)
		relaytest.QuietType(t, fresh, "direct", 200*time.Millisecond)
		if err := bob.Direct("alice", "new", nil); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, fresh, "direct"); string(m.Data) != `"new"` {
			t.Fatalf("the new connection got %s", m.Raw)
		}
		again := &relaytest.Resumer{T: t, Server: ts}
		again.ResumeAs(alice.Token, alice.Received, "")
		if again.Welcome["resumed"] != false {
			t.Fatalf("a replaced session was resumed: %v", again.Welcome)
		}
	})
}

// TestResumeUnknownToken: with resume on, a token the server never issued
// gets an ordinary new session, with the peer id as for a new connection,
// counted as a failed resume.
func TestResumeUnknownToken(t *testing.T) {
	ts := relaytest.Start(t)
	for i, tok := range []string{"bogus", strings.Repeat("A", 200), "-_-_"} {
		r := &relaytest.Resumer{T: t, Server: ts}
		r.Connect(fmt.Sprintf("/ws?resume=%s&received=0&peer=carol%d", tok, i))
		if r.Welcome["resumed"] != false || r.Peer != fmt.Sprint("carol", i) || r.Token == "" {
			t.Fatalf("resume=%.10s: welcome %v", tok, r.Welcome)
		}
		if v := metricValue(t, ts, "wsrelay_sessions_resume_failed_total"); v != float64(i+1) {
			t.Fatalf("resume_failed_total %v, want %d", v, i+1)
		}
	}
}

// TestAPIDisconnectCloseReason: the server API's disconnect closes with
// 4000 "disconnected" by default (docs/protocol.md section 14), and with the
// code and reason asked for otherwise.
func TestAPIDisconnectCloseReason(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_API_KEY="+relaytest.APIKey)
	for _, tc := range []struct {
		body, reason string
		code         int
	}{
		{`{"peer":"p0"}`, "disconnected", 4000},
		{`{"peer":"p1","code":4999,"reason":"bye"}`, "bye", 4999},
	} {
		var peer struct{ Peer string }
		_ = json.Unmarshal([]byte(tc.body), &peer)
		rc := relaytest.RawDial(t, ts.Addr().String(), "/ws?peer="+peer.Peer)
		t.Cleanup(func() { rc.Close() })
		if f := readData(t, rc); !bytes.Contains(f.payload, []byte(`"welcome"`)) {
			t.Fatalf("first message %q", f.payload)
		}
		if code, m := ts.Call("POST", "/api/disconnect", tc.body); code != 200 {
			t.Fatalf("disconnect: %d %v", code, m)
		}
		if code, reason := readClose(t, rc, 5*time.Second); code != tc.code || reason != tc.reason {
			t.Fatalf("%s: closed with %d %q, want %d %q", tc.body, code, reason, tc.code, tc.reason)
		}
	}
}

// TestServerIsNoPeerID: "@server", the sender of the server API's
// messages, cannot be taken by a client.
func TestServerIsNoPeerID(t *testing.T) {
	ts := relaytest.Start(t)
	if _, err := relaytest.TryRawDial(ts.Addr().String(), "/ws?peer=%40server"); err == nil || !strings.Contains(err.Error(), "status 400") {
		t.Fatalf("peer @server: %v, want status 400", err)
	}
	c := ts.Dial("alice")
	if err := c.Direct("@server", 1, 1); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "error"); m.Code != "bad_request" {
		t.Fatalf("direct to @server: %s", m.Raw)
	}
}

// TestCompressionMinBytes: WSRELAY_COMPRESSION_MIN_BYTES sets the size from
// which the server compresses, on relayed messages and on /echo.
func TestCompressionMinBytes(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_COMPRESSION=true", "WSRELAY_COMPRESSION_MIN_BYTES=100", "WSRELAY_ECHO=true")
	addr := ts.Addr().String()
	echo := zDial(t, addr, "/echo", "permessage-deflate")
	for _, size := range []int{99, 100} {
		echo.sendMsg(t, frame.OpText, bytes.Repeat([]byte("e"), size), false, 0)
		if _, compressed, got := echo.readMsg(t); len(got) != size || compressed != (size >= 100) {
			t.Fatalf("echo of %d bytes: %d bytes back, compressed %v", size, len(got), compressed)
		}
	}

	to := zDial(t, addr, "/ws?peer=to", "permessage-deflate")
	to.readMsg(t) // welcome
	from := ts.Dial("f")
	prefix := `{"type":"direct","from":"f","data":"`
	for _, size := range []int{99, 100} {
		data := strings.Repeat("d", size-len(prefix)-len(`"}`))
		if err := from.Direct("to", data, nil); err != nil {
			t.Fatal(err)
		}
		_, compressed, got := to.readMsg(t)
		if len(got) != size || !strings.HasPrefix(string(got), prefix) || compressed != (size >= 100) {
			t.Fatalf("direct of %d bytes: got %q, compressed %v", size, got, compressed)
		}
	}
}

// TestRoomTokensTelegram: in auth mode telegram a room token names the
// base id tg:<user.id>, without the device (docs/protocol.md section 11).
func TestRoomTokensTelegram(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=telegram", "WSRELAY_TELEGRAM_BOT_TOKEN="+testBotToken,
		"WSRELAY_JWT_SECRET="+testSecret, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	c, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{
		Header: http.Header{"Authorization": {"tma " + initData(testBotToken, tgFields(42, time.Now()))}},
		Query:  url.Values{"device": {"tab"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	if c.PeerID() != "tg:42:tab" {
		t.Fatalf("peer %q", c.PeerID())
	}
	key := []byte(testSecret)
	for i, tc := range []struct {
		sub, result string
	}{
		{"tg:42:tab", "forbidden"},
		{"tg:43", "forbidden"},
		{"42", "forbidden"},
		{"tg:42", "joined"},
	} {
		tok := relaytest.SignJWT(t, jwt.SigningMethodHS256, key, roomClaims(tc.sub, "vip"))
		if got := joinResult(t, c, "vip", tok, fmt.Sprint("t", i)); got != tc.result {
			t.Fatalf("room token for %q: %s, want %s", tc.sub, got, tc.result)
		}
	}
}

// TestRoomTokensPublicKey: room tokens are checked with the configured
// public key and its algorithms, in every auth mode (here none).
func TestRoomTokensPublicKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := relaytest.WritePublicKeyPEM(t, &ec.PublicKey)
	ts := relaytest.Start(t, "WSRELAY_JWT_PUBLIC_KEY_FILE="+path, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	c := ts.Dial("erin")
	pemBytes, _ := os.ReadFile(path)
	for i, tc := range []struct {
		name, token, result string
	}{
		{"no token", "", "forbidden"},
		{"another key", relaytest.SignJWT(t, jwt.SigningMethodES256, other, roomClaims("erin", "vip")), "forbidden"},
		{"HS256 keyed with the PEM", relaytest.SignJWT(t, jwt.SigningMethodHS256, pemBytes, roomClaims("erin", "vip")), "forbidden"},
		{"ES256", relaytest.SignJWT(t, jwt.SigningMethodES256, ec, roomClaims("erin", "vip")), "joined"},
	} {
		if got := joinResult(t, c, "vip", tc.token, fmt.Sprint("k", i)); got != tc.result {
			t.Fatalf("%s: %s, want %s", tc.name, got, tc.result)
		}
	}
}

// TestKeyAuthDefaultWindow: with the default limit a client has 10 s to
// answer the challenge (docs/protocol.md section 11): an answer after 9.5 s
// is accepted, no answer is closed with 4003 soon after 10 s.
func TestKeyAuthDefaultWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	t.Parallel()
	ts := startKey(t, 0)
	k, priv := newKey(t)
	late, nonce := challenged(t, ts, k, "")
	silentKey, _ := newKey(t)
	start := time.Now() // before the server's clock for silent starts
	silent, _ := challenged(t, ts, silentKey, "")

	time.Sleep(9500 * time.Millisecond)
	if err := late.SendFrame(true, frame.OpText, authMsg(priv, nonce)); err != nil {
		t.Fatal(err)
	}
	if f := readData(t, late); !bytes.Contains(f.payload, []byte(`"welcome"`)) {
		t.Fatalf("answer after 9.5 s: got %q, want the welcome", f.payload)
	}
	code, reason := readClose(t, silent, 5*time.Second)
	if el := time.Since(start); code != 4003 || reason != "authentication failed" || el < 10*time.Second || el > 11500*time.Millisecond {
		t.Fatalf("no answer: closed with %d %q after %v, want 4003 after 10 s", code, reason, el)
	}
}

// TestResumeCountsOverflowNotDrops: a message dropped on a full queue gets
// no number and the overflow notice gets one (docs/protocol.md section 10): a
// client that counted everything it read, overflow included, resumes
// with nothing missed and nothing replayed.
func TestResumeCountsOverflowNotDrops(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_QUEUE_SIZE=16", "WSRELAY_FLOW_CONTROL=false", "WSRELAY_CLIENT_TIMEOUT=10m")
	bob := ts.Dial("bob")
	relaytest.Join(t, bob, "r")
	alice := &relaytest.Resumer{T: t, Server: ts}
	alice.Connect("/ws?peer=alice")
	_ = alice.RC.Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	alice.Send(`{"type":"join","room":"r"}`)
	alice.Expect("joined")
	relaytest.Recv(t, bob, "peer_joined")

	const n = 1000 // 8 MB: more than alice's socket takes while she does not read
	relaytest.PublishBurst(t, bob, "r", n, 8<<10)
	relaytest.AckLast(t, bob, 5*time.Second)
	dropped := ts.Stats.DroppedBy(stats.DropQueueFull)
	if dropped == 0 {
		t.Fatal("nothing dropped: the test did not fill alice's queue")
	}
	// Alice reads and counts everything: the publishes, then the notice.
	publishes, lost := 0, uint64(0)
	for publishes+int(lost) < n {
		m := alice.Read()
		switch m["type"] {
		case "publish":
			publishes++
		case "overflow":
			lost += uint64(m["dropped"].(float64))
		default:
			t.Fatalf("got %v", m)
		}
	}
	if lost != dropped {
		t.Fatalf("told of %d drops, server counted %d", lost, dropped)
	}
	alice.Cut()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)
	alice.Resume()
	if alice.Welcome["resumed"] != true || alice.Welcome["missed"] != 0.0 {
		t.Fatalf("welcome %v, want resumed with nothing missed", alice.Welcome)
	}
	if err := bob.Publish("r", "live", nil); err != nil {
		t.Fatal(err)
	}
	if m := alice.Expect("publish"); m["data"] != "live" {
		t.Fatalf("first message after the resume: %v, want the live publish", m)
	}
}

// TestKeyAuthResumeStartsNewSession pins a documented limitation
// (docs/protocol.md section 10): in auth mode key a resume request cannot be
// bound to the peer before the challenge, so it gets a new session, which
// replaces the detached one once the key is proven.
func TestKeyAuthResumeStartsNewSession(t *testing.T) {
	ts := startKey(t, 0)
	k, priv := newKey(t)
	rc, nonce := challenged(t, ts, k, "")
	if err := rc.SendFrame(true, frame.OpText, authMsg(priv, nonce)); err != nil {
		t.Fatal(err)
	}
	var w struct {
		Type, Peer, Resume string
		Resumed            bool
	}
	if f := readData(t, rc); json.Unmarshal(f.payload, &w) != nil || w.Type != "welcome" || w.Resume == "" {
		t.Fatalf("welcome %q", f.payload)
	}
	rc.Close()
	waitMetric(t, ts, "wsrelay_sessions_detached", 1)

	again, nonce := challenged(t, ts, k, "&resume="+url.QueryEscape(w.Resume)+"&received=0")
	if err := again.SendFrame(true, frame.OpText, authMsg(priv, nonce)); err != nil {
		t.Fatal(err)
	}
	var w2 struct {
		Type, Peer string
		Resumed    bool
	}
	if f := readData(t, again); json.Unmarshal(f.payload, &w2) != nil || w2.Type != "welcome" || w2.Peer != "k:"+k || w2.Resumed {
		t.Fatalf("welcome of the resume request %q, want a new session for k:%s", f.payload, k)
	}
	waitMetric(t, ts, "wsrelay_sessions_detached", 0)
}
