package conn

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

func newResumeEnv(t testing.TB, queueSize int) *Env {
	t.Helper()
	env := newEnv(t, queueSize, 0)
	env.EnableResume()
	return env
}

// texts returns the payloads of the text frames in b, in order.
func texts(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	for _, f := range parseFrames(t, b) {
		if f.op == frame.OpText {
			out = append(out, string(f.payload))
		}
	}
	return out
}

// sendAll queues and flushes one frame per body; the frames are released by
// the test at once, so only the Conn holds them afterwards.
func sendAll(c *Conn, bodies ...string) []*frame.Buf {
	var bufs []*frame.Buf
	for _, body := range bodies {
		b := textBuf(body)
		c.Send(b)
		bufs = append(bufs, b)
	}
	return bufs
}

// enqueueAll queues one frame per body without flushing and returns them,
// the test still holding a reference to each, and whether c owes a Flush
// for them.
func enqueueAll(c *Conn, bodies ...string) (bufs []*frame.Buf, owed bool) {
	for _, body := range bodies {
		b := textBuf(body)
		bufs = append(bufs, b)
		_, must := c.Enqueue(b)
		owed = owed || must
	}
	return bufs, owed
}

// attachReplays attaches a new socket to the detached c, telling it the
// client received the first received frames, flushes, and checks that
// Attach reports wantMissed missed frames and that the socket got the
// frames want lists: the texts joined by commas, the welcome first.
func attachReplays(t *testing.T, c *Conn, received, wantMissed uint64, want string) {
	t.Helper()
	welcome, _, _ := strings.Cut(want, ",")
	s := &fakeSocket{c: c}
	missed, ok := c.Attach(s, received, welcomeOf(welcome))
	if !ok || missed != wantMissed {
		t.Fatalf("Attach = %d, %v; want %d, true", missed, ok, wantMissed)
	}
	c.Flush(nil)
	if got := strings.Join(texts(t, s.Bytes()), ","); got != want {
		t.Fatalf("after resume with received %d: %s, want %s", received, got, want)
	}
}

// newGreeted returns, as newConn, a Conn "a" that has written the welcome
// "welcome".
func newGreeted(t testing.TB, env *Env) (*Conn, *fakeSocket) {
	t.Helper()
	c, s := newConn(t, env, "a")
	if c.Greet(textBuf("welcome")) {
		c.Flush(nil)
	}
	return c, s
}

func releaseAll(bufs []*frame.Buf) {
	for _, b := range bufs {
		b.Release()
	}
}

// teardownFrees releases the test's references to bufs, tears c down and
// checks that nothing holds any of them any longer.
func teardownFrees(t testing.TB, c *Conn, bufs []*frame.Buf) {
	t.Helper()
	releaseAll(bufs)
	c.Teardown()
	for i, b := range bufs {
		if b.Refs() != 0 {
			t.Fatalf("frame %d still has %d references", i+1, b.Refs())
		}
	}
}

func TestResumeNumbersAndKeepsWrittenMessages(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s := newGreeted(t, env)
	bufs := sendAll(c, "m1", "m2", "m3", "m4", "m5")
	if got := strings.Join(texts(t, s.Bytes()), ","); got != "welcome,m1,m2,m3,m4,m5" {
		t.Fatalf("written %s", got)
	}
	if n := c.Numbered(); n != 5 {
		t.Fatalf("Numbered = %d, want 5 (the welcome has no number)", n)
	}
	if n := c.Replayable(); n != 5 {
		t.Fatalf("Replayable = %d, want 5", n)
	}
	for _, b := range bufs {
		if b.Refs() != 2 {
			t.Fatalf("a written frame has %d references, want 2 (test, replay buffer): kept by reference", b.Refs())
		}
	}
	c.Ack(3)
	if n := c.Replayable(); n != 2 {
		t.Fatalf("after received 3: Replayable = %d, want 2", n)
	}
	if bufs[0].Refs() != 1 || bufs[3].Refs() != 2 {
		t.Fatal("Ack(3) must release messages 1..3 and keep 4")
	}
	c.Ack(99) // past what was written: counts up to 5
	if n := c.Replayable(); n != 0 {
		t.Fatalf("after received 99: Replayable = %d, want 0", n)
	}
	if c.replay != nil {
		t.Fatal("an empty replay buffer must give its storage back")
	}
	releaseAll(bufs)
	c.Teardown()
}

func TestResumePingPongAcknowledges(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s := newConn(t, env, "a")
	bufs := sendAll(c, "m1", "m2")
	ping := c.AppendPing(nil)
	fs := parseFrames(t, ping)
	if len(fs) != 1 || fs[0].op != frame.OpPing || len(fs[0].payload) != 8 {
		t.Fatalf("ping % x: want a ping with an 8-byte payload", ping)
	}
	if mark := binary.BigEndian.Uint64(fs[0].payload); mark != 2 {
		t.Fatalf("ping mark %d, want 2 (messages written before it)", mark)
	}
	more := sendAll(c, "m3")
	c.OnPong(fs[0].payload) // the client answers the ping
	if n := c.Replayable(); n != 1 {
		t.Fatalf("after the pong: Replayable = %d, want 1 (m3 was written after the ping)", n)
	}
	c.OnPong([]byte("x")) // not one of ours
	if n := c.Replayable(); n != 1 {
		t.Fatalf("a foreign pong changed Replayable to %d", n)
	}
	c.OnPong(parseFrames(t, c.AppendPing(nil))[0].payload)
	if n := c.Replayable(); n != 0 {
		t.Fatalf("after one more ping round: Replayable = %d, want 0", n)
	}
	_ = s
	releaseAll(bufs)
	releaseAll(more)
	c.Teardown()
}

// An idle session holds nothing for replay after one ping round: every
// frame written before the ping is released by the Conn and its replay
// storage, of whatever tier, goes back to the Env (PROTOCOL.md section
// 10), so idle connections cost no more than with resume off.
func TestPingRoundReleasesReplayStorage(t *testing.T) {
	env := newResumeEnv(t, 64)
	c, _ := newConn(t, env, "a")
	for _, count := range []int{3, replayTiers[0] + 4, replayTiers[1] + 8} { // each tier of storage
		bodies := make([]string, count)
		for i := range bodies {
			bodies[i] = fmt.Sprintf("m%d", i)
		}
		bufs := sendAll(c, bodies...)
		for i, b := range bufs {
			if r := b.Refs(); r != 2 {
				t.Fatalf("%d frames: frame %d has %d references before the ping, want 2 (test, replay)", count, i, r)
			}
		}
		c.OnPong(parseFrames(t, c.AppendPing(nil))[0].payload)
		for i, b := range bufs {
			if r := b.Refs(); r != 1 {
				t.Fatalf("%d frames: frame %d has %d references after a ping round, want 1: the Conn still holds it", count, i, r)
			}
		}
		c.mu.Lock()
		held := c.replay
		c.mu.Unlock()
		if held != nil {
			t.Fatalf("%d frames: after a ping round the Conn keeps replay storage for %d frames, want none", count, len(held.bufs))
		}
		releaseAll(bufs)
	}
	c.Teardown()
}

func TestResumeOffKeepsVersion1(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, s := newConn(t, env, "a")
	bufs := sendAll(c, "m1")
	if c.Replayable() != 0 || c.Numbered() != 0 {
		t.Fatal("without resume nothing is numbered or kept")
	}
	if bufs[0].Refs() != 1 {
		t.Fatalf("refs %d, want 1", bufs[0].Refs())
	}
	if got := c.AppendPing(nil); string(got) != string([]byte{0x89, 0}) {
		t.Fatalf("ping % x, want an empty ping", got)
	}
	if r := c.Detach(s); r != Ended {
		t.Fatalf("Detach = %v, want Ended", r)
	}
	releaseAll(bufs)
	c.Teardown()
}

func TestDetachAttachReplaysInOrder(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newGreeted(t, env)
	bufs := sendAll(c, "m1", "m2", "m3")
	if r := c.Detach(s1); r != Detached {
		t.Fatalf("Detach = %v, want Detached", r)
	}
	if r := c.Detach(s1); r != NotAttached {
		t.Fatalf("second Detach = %v, want NotAttached", r)
	}
	// While detached frames are queued and numbered, nothing is written.
	for _, body := range []string{"m4", "m5"} {
		b := textBuf(body)
		if queued, flush := c.Enqueue(b); !queued || flush {
			t.Fatalf("Enqueue while detached = %v, %v; want queued, no flush", queued, flush)
		}
		bufs = append(bufs, b)
	}
	c.WriteControl(c.AppendPing(nil))
	if got := len(s1.Writes()); got != 4 {
		t.Fatalf("%d writes to the old socket, want 4", got)
	}

	// After resume with received 1: m1 is acknowledged, the rest replayed.
	attachReplays(t, c, 1, 0, "welcome2,m2,m3,m4,m5")
	// Replayed and new messages count on: m6 is number 6.
	bufs = append(bufs, sendAll(c, "m6")...)
	ping := parseFrames(t, c.AppendPing(nil))[0].payload
	if mark := binary.BigEndian.Uint64(ping); mark != 6 {
		t.Fatalf("ping mark %d after m6, want 6", mark)
	}
	c.OnPong(ping)
	if c.Replayable() != 0 {
		t.Fatal("the pong must acknowledge everything")
	}
	teardownFrees(t, c, bufs)
}

func TestAttachMissed(t *testing.T) {
	t.Run("replay buffer bound", func(t *testing.T) {
		env := newResumeEnv(t, 4)
		c, s1 := newConn(t, env, "a")
		bufs := sendAll(c, "m1", "m2", "m3", "m4", "m5", "m6")
		if n := c.Replayable(); n != 4 {
			t.Fatalf("Replayable = %d, want QUEUE_SIZE 4", n)
		}
		c.Detach(s1)
		attachReplays(t, c, 0, 2, "w,m3,m4,m5,m6") // m1, m2 released
		releaseAll(bufs)
		c.Teardown()
	})
	t.Run("queue full while detached", func(t *testing.T) {
		env := newResumeEnv(t, 2)
		c, s1 := newConn(t, env, "a")
		c.Detach(s1)
		bufs, _ := enqueueAll(c, "m1", "m2", "m3", "m4", "m5")
		// m3 to m5 were dropped on the full queue: they are in missed, and
		// no overflow notice follows the replay.
		attachReplays(t, c, 0, 3, "w,m1,m2")
		releaseAll(bufs)
		c.Teardown()
	})
}

func TestAttachRefused(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1", "m2")
	s2 := &fakeSocket{c: c}
	if _, ok := c.Attach(s2, 0, welcomeOf("w")); ok {
		t.Fatal("Attach to an attached Conn must fail")
	}
	c.Detach(s1)
	if _, ok := c.Attach(s2, 3, welcomeOf("w")); ok {
		t.Fatal("Attach with received past what was sent must fail")
	}
	if !c.Detached() {
		t.Fatal("a refused Attach must leave the Conn detached")
	}
	releaseAll(bufs)
	c.Teardown()
}

func TestExpireDiscardsAndCounts(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1")
	c.Detach(s1)
	more, _ := enqueueAll(c, "m2", "m3")
	bufs = append(bufs, more...)
	before := metric(t, env.Stats, discardedMetric)
	if !c.Expire() {
		t.Fatal("Expire of a detached Conn must succeed")
	}
	if got := metric(t, env.Stats, discardedMetric) - before; got != 2 {
		t.Fatalf("discarded %v, want 2 (the queued frames)", got)
	}
	if c.Expire() {
		t.Fatal("a second Expire must do nothing")
	}
	if q, _ := c.Enqueue(bufs[0]); q {
		t.Fatal("an expired Conn takes no frames")
	}
	for i, b := range bufs {
		if b.Refs() != 1 {
			t.Fatalf("frame %d: %d references, want the test's only", i+1, b.Refs())
		}
	}
	releaseAll(bufs)
}

func TestTakeover(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1", "m2")
	if !c.Takeover(frame.CloseReplaced, "resumed") {
		t.Fatal("Takeover of an attached Conn must succeed")
	}
	fs := parseFrames(t, s1.Bytes())
	if code, reason := parseClose(t, fs[len(fs)-1]); code != 4001 || reason != "resumed" {
		t.Fatalf("old socket closed with %d %q, want 4001 resumed", code, reason)
	}
	if r := c.Detach(s1); r != NotAttached {
		t.Fatalf("the old socket's end: Detach = %v, want NotAttached", r)
	}
	s2 := &fakeSocket{c: c}
	if _, ok := c.Attach(s2, 1, welcomeOf("w")); !ok {
		t.Fatal("Attach after Takeover must succeed")
	}
	c.Flush(nil)
	if got := strings.Join(texts(t, s2.Bytes()), ","); got != "w,m2" {
		t.Fatalf("replayed %s", got)
	}
	releaseAll(bufs)
	c.Teardown()
}

func TestDetachAfterCloseEnds(t *testing.T) {
	env := newResumeEnv(t, 8)
	t.Run("CloseWith", func(t *testing.T) {
		c, s := newConn(t, env, "a")
		c.CloseWith(1000, "")
		if r := c.Detach(s); r != Ended {
			t.Fatalf("Detach = %v, want Ended", r)
		}
		c.Teardown()
	})
	t.Run("Shutdown", func(t *testing.T) {
		c, s := newConn(t, env, "a")
		s.stall()
		c.Send(textBuf("m1"))
		c.Shutdown(closeBuf(1001))
		if r := c.Detach(s); r != Ended {
			t.Fatalf("Detach = %v, want Ended", r)
		}
		c.Teardown()
	})
	t.Run("CloseWith while detached", func(t *testing.T) {
		c, s := newConn(t, env, "a")
		c.Detach(s)
		c.CloseWith(4001, "replaced")
		if c.Detached() || c.Open() {
			t.Fatal("a replaced detached session must be closed")
		}
		if _, ok := c.Attach(&fakeSocket{c: c}, 0, welcomeOf("w")); ok {
			t.Fatal("a closed session cannot be resumed")
		}
	})
}

func TestResumeOverflowIsNumbered(t *testing.T) {
	env := newResumeEnv(t, 2)
	env.HighWater = 2
	c, s := newConn(t, env, "a")
	s.stall()
	var bufs []*frame.Buf
	for i := range 5 {
		b := textBuf(fmt.Sprint("m", i+1))
		c.Send(b) // m1 is written and blocks; m2, m3 wait; m4, m5 are dropped
		bufs = append(bufs, b)
	}
	s.drain()
	// The Drainer flushes: m2, m3, then the overflow notice as message 4.
	deadline := 200
	for c.Numbered() != 4 || c.Queued() != 0 {
		if deadline--; deadline == 0 {
			t.Fatalf("Numbered %d, Queued %d", c.Numbered(), c.Queued())
		}
		waitABit()
	}
	got := texts(t, s.Bytes())
	want := []string{"m1", "m2", "m3", `{"type":"overflow","dropped":2}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("written %q, want %q", got, want)
	}
	if n := c.Replayable(); n != 2 {
		t.Fatalf("Replayable %d, want QUEUE_SIZE 2", n)
	}
	releaseAll(bufs)
	c.Teardown()
}

func waitABit() { time.Sleep(5 * time.Millisecond) }

// TestResumeConcurrentExactlyOnce: messages keep arriving while the client
// loses its socket and resumes again and again, telling each time how many
// it received on the sockets before. Whatever was written to a socket after
// the client stopped reading it, the client ends up with every message
// exactly once, in order.
func TestResumeConcurrentExactlyOnce(t *testing.T) {
	const total = 3000
	env := newResumeEnv(t, total)
	c, s := newGreeted(t, env)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			b := textBuf(fmt.Sprint("m", i+1))
			if _, flush := c.Enqueue(b); flush {
				c.Flush(nil)
			}
			b.Release()
		}
	}()
	var log []string
	// read takes what the client received on sock before losing it: the
	// data messages after its welcome.
	read := func(sock *fakeSocket) {
		got := texts(t, sock.Bytes())
		if len(got) == 0 || !strings.HasPrefix(got[0], "welcome") {
			t.Fatalf("a socket's first frame is %q, want the welcome", got)
		}
		log = append(log, got[1:]...)
	}
	for round := 0; ; round++ {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		if r := c.Detach(s); r != Detached {
			t.Fatalf("round %d: Detach = %v", round, r)
		}
		read(s)
		s = &fakeSocket{c: c}
		missed, ok := c.Attach(s, uint64(len(log)), welcomeOf(fmt.Sprint("welcome", round)))
		if !ok || missed != 0 {
			t.Fatalf("round %d: Attach(received %d) = %d, %v", round, len(log), missed, ok)
		}
		c.Flush(nil)
		if finished {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.Detach(s)
	read(s)
	if len(log) != total {
		t.Fatalf("received %d messages, want %d", len(log), total)
	}
	for i, m := range log {
		if m != fmt.Sprint("m", i+1) {
			t.Fatalf("message %d is %q", i+1, m)
		}
	}
	c.Expire()
}

// welcomeOf returns a welcome builder for Attach that ignores missed.
func welcomeOf(body string) func(uint64) *frame.Buf {
	return func(uint64) *frame.Buf { return textBuf(body) }
}

// TestFlushOfLostSocketStops: a Flush still inside a write to a socket that
// was lost meanwhile never writes to the socket that resumed the session,
// and the new socket gets every frame once, in order.
func TestFlushOfLostSocketStops(t *testing.T) {
	env := newResumeEnv(t, 64)
	old := &blockingSocket{entered: make(chan struct{}), release: make(chan struct{})}
	c := New(env, "a", "192.0.2.1", old)
	old.c = c
	var bufs []*frame.Buf
	queue := func(from, to int) {
		for i := from; i <= to; i++ {
			b := textBuf(fmt.Sprint("m", i))
			if _, flush := c.Enqueue(b); flush {
				if i == 1 {
					go c.Flush(nil) // blocks in the old socket's Write
				} else {
					c.Flush(nil)
				}
			}
			bufs = append(bufs, b)
		}
	}
	queue(1, 1)
	<-old.entered // the Flush is writing m1 to the old socket
	queue(2, 4)   // wait behind it
	if r := c.Detach(old); r != Detached {
		t.Fatalf("Detach = %v", r)
	}
	next := &blockingSocket{entered: make(chan struct{}), release: make(chan struct{})}
	next.c = c
	if _, ok := c.Attach(next, 0, welcomeOf("w")); !ok {
		t.Fatal("Attach failed")
	}
	done := make(chan struct{})
	go func() {
		c.Flush(nil)
		close(done)
	}()
	<-next.entered     // the new socket's Flush is writing too
	queue(5, 6)        // wait behind it
	close(old.release) // the old Flush finishes its write and must stop
	time.Sleep(20 * time.Millisecond)
	close(next.release)
	<-done
	queue(7, 7)
	if got := strings.Join(texts(t, next.Bytes()), ","); got != "w,m1,m2,m3,m4,m5,m6,m7" {
		t.Fatalf("new socket got %s", got)
	}
	if got := strings.Join(texts(t, old.Bytes()), ","); got != "m1" {
		t.Fatalf("old socket got %s, want only the frame it was writing", got)
	}
	releaseAll(bufs)
	c.Teardown()
}

// TestCloseBeforeFirstFlushWritesPreface: a connection closed (replaced by
// a newer one of its peer id, say) before its first Flush still writes the
// transport's upgrade response first, then the close frame: the client
// never reads a close frame where it expects the handshake response.
func TestCloseBeforeFirstFlushWritesPreface(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, s := newConn(t, env, "a")
	hello := "HTTP/1.1 101 Switching Protocols\r\n\r\n"
	c.Preface([]byte(hello))
	welcome := textBuf("welcome")
	c.Greet(welcome)
	welcome.Release()
	c.CloseWith(frame.CloseReplaced, "replaced")
	out := string(s.Bytes())
	if !strings.HasPrefix(out, hello) {
		t.Fatalf("wrote %q, want the upgrade response first", out)
	}
	fs := parseFrames(t, []byte(out[len(hello):]))
	if len(fs) != 1 || fs[0].op != frame.OpClose {
		t.Fatalf("after the upgrade response: %d frames, want one close frame", len(fs))
	}
	if welcome.Refs() != 0 {
		t.Fatalf("welcome still has %d references", welcome.Refs())
	}
}
