package conn

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// Acknowledging pings (askAckLocked, AckPing): with resume on, a Flush that
// writes data messages appends a ping to the same write, so that the
// client's pong releases them a round trip later instead of at the next
// heartbeat; the pings are spaced out and the last frames of a burst get
// theirs from Env.AckLater.

// ackEnv returns a resume Env whose AckLater hands the Conns to the
// returned function's result.
func ackEnv(t *testing.T) (*Env, func() []*Conn) {
	t.Helper()
	env := newResumeEnv(t, 64)
	var later []*Conn
	env.AckLater = func(c *Conn) { later = append(later, c) }
	return env, func() []*Conn {
		l := later
		later = nil
		return l
	}
}

// ackConn returns, as newConn, a Conn "a" in an ackEnv with the env's
// AckLater hand-outs; the Conn is torn down when the test ends.
func ackConn(t *testing.T) (*Conn, *fakeSocket, func() []*Conn) {
	t.Helper()
	env, later := ackEnv(t)
	c, s := newConn(t, env, "a")
	t.Cleanup(c.Teardown)
	return c, s, later
}

// lastPing returns the mark of the ping that ends write w, or fails.
func lastPing(t *testing.T, w []byte) uint64 {
	t.Helper()
	fs := parseFrames(t, w)
	last := fs[len(fs)-1]
	if last.op != frame.OpPing || len(last.payload) != pingMarkLen {
		t.Fatalf("write ends with op %d payload % x, want a ping with an 8-byte mark", last.op, last.payload)
	}
	return binary.BigEndian.Uint64(last.payload)
}

func TestFlushAppendsAckPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, later := ackConn(t)
		m1 := sendAll(c, "m1")
		writes := s.Writes()
		if len(writes) != 1 {
			t.Fatalf("%d writes, want 1: the ping goes in the data's write", len(writes))
		}
		if got := texts(t, writes[0]); len(got) != 1 || got[0] != "m1" {
			t.Fatalf("write carries %v, want m1 then the ping", got)
		}
		mark := lastPing(t, writes[0])
		if mark != 1 {
			t.Fatalf("ping mark %d, want 1", mark)
		}

		// Its pong is outstanding: the next write carries no ping.
		m2 := sendAll(c, "m2")
		writes = s.Writes()
		if fs := parseFrames(t, writes[1]); len(fs) != 1 || fs[0].op != frame.OpText {
			t.Fatalf("second write has %d frames, want m2 alone while the first ping is unanswered", len(fs))
		}
		if l := later(); len(l) != 0 {
			t.Fatal("handed to AckLater while a ping is outstanding: its pong comes first")
		}

		// The pong releases m1 only: m2 was written after that ping.
		var pong [pingMarkLen]byte
		binary.BigEndian.PutUint64(pong[:], mark)
		c.OnPong(pong[:])
		if m1[0].Refs() != 1 || m2[0].Refs() != 2 {
			t.Fatalf("after the pong: m1 refs %d, m2 refs %d; want 1 (released) and 2 (kept)", m1[0].Refs(), m2[0].Refs())
		}
		l := later()
		if len(l) != 1 || l[0] != c {
			t.Fatalf("AckLater got %d Conns, want this one: m2 waits for a ping", len(l))
		}

		// Within the interval AckPing asks to be called again, then writes
		// a ping alone that acknowledges m2.
		again, _ := c.AckPing(nil)
		if !again || len(s.Writes()) != 2 {
			t.Fatalf("AckPing before the interval: again %v, %d writes; want true and nothing written", again, len(s.Writes()))
		}
		time.Sleep(ackPingMax)
		again, _ = c.AckPing(nil)
		writes = s.Writes()
		if again || len(writes) != 3 {
			t.Fatalf("AckPing after the interval: again %v, %d writes; want false and a ping", again, len(writes))
		}
		if fs := parseFrames(t, writes[2]); len(fs) != 1 {
			t.Fatalf("AckPing wrote %d frames, want a ping alone", len(fs))
		}
		binary.BigEndian.PutUint64(pong[:], lastPing(t, writes[2]))
		c.OnPong(pong[:])
		if m2[0].Refs() != 1 || c.Replayable() != 0 {
			t.Fatalf("after the second pong: m2 refs %d, Replayable %d; want 1 and 0", m2[0].Refs(), c.Replayable())
		}
		if again, _ := c.AckPing(nil); again || len(s.Writes()) != 3 {
			t.Fatal("AckPing with nothing to acknowledge must write nothing and not ask again")
		}
		releaseAll(m1)
		releaseAll(m2)
	})
}

// A connection that keeps receiving gets acknowledging pings ackPingMin
// apart for the first ackFast of the burst, then further and further apart
// up to ackPingMax: under sustained traffic, a pong every few seconds to
// read. After a quiet spell the next messages get them promptly again.
func TestAckPingsSpacedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, later := ackConn(t)
		// send writes one message, answers the ping if the write has one,
		// and reports whether it had.
		send := func() bool {
			releaseAll(sendAll(c, "m"))
			ws := s.Writes()
			w := ws[len(ws)-1]
			if fs := parseFrames(t, w); fs[len(fs)-1].op != frame.OpPing {
				return false
			}
			var pong [pingMarkLen]byte
			binary.BigEndian.PutUint64(pong[:], lastPing(t, w))
			c.OnPong(pong[:]) // answered at once
			return true
		}
		const (
			every = 10 * time.Millisecond
			total = 30 * time.Second
		)
		var first, last int // pings in the first ackFast, in the last 3*ackPingMax
		start := time.Now()
		for range int(total / every) {
			if send() {
				switch at := time.Since(start); {
				case at < ackFast:
					first++
				case at >= total-3*ackPingMax:
					last++
				}
			}
			later()
			time.Sleep(every)
		}
		if want := int(ackFast / ackPingMin); first < want-1 || first > want+1 {
			t.Errorf("%d acknowledging pings in the first %v of a message every %v, want about %d", first, ackFast, every, want)
		}
		if last < 2 || last > 4 {
			t.Errorf("%d acknowledging pings in the last %v of steady traffic, want 3 (one per %v)", last, 3*ackPingMax, ackPingMax)
		}
		time.Sleep(ackQuiet + ackPingMax)
		if !send() {
			t.Fatal("the first message after a quiet spell carries no ping")
		}
		time.Sleep(ackPingMin)
		if !send() {
			t.Fatal("the second message, ackPingMin after a quiet spell, carries no ping")
		}
	})
}

// A client that does not answer pings gets one acknowledging ping, not one
// per write: its frames stay for replay until it acknowledges otherwise.
func TestAckPingUnansweredNotRepeated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, later := ackConn(t)
		var all []*frame.Buf
		for range 20 {
			all = append(all, sendAll(c, "m")...)
			time.Sleep(ackPingMax)
		}
		pings := 0
		for _, w := range s.Writes() {
			for _, f := range parseFrames(t, w) {
				if f.op == frame.OpPing {
					pings++
				}
			}
		}
		if pings != 1 {
			t.Fatalf("%d pings to a client that never answers, want 1", pings)
		}
		if l := later(); len(l) != 0 {
			t.Fatal("handed to AckLater while its ping is unanswered")
		}
		if c.Replayable() != 20 {
			t.Fatalf("Replayable = %d, want 20: nothing was acknowledged", c.Replayable())
		}
		releaseAll(all)
	})
}

func TestNoAckPingWithoutResume(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, s := newConn(t, env, "a")
	bufs := sendAll(c, "m1", "m2")
	if got := texts(t, s.Bytes()); len(got) != 2 {
		t.Fatalf("written %q, want m1 and m2", got)
	}
	for _, w := range s.Writes() {
		for _, f := range parseFrames(t, w) {
			if f.op != frame.OpText {
				t.Fatalf("frame op %d with resume off, want text only", f.op)
			}
		}
	}
	releaseAll(bufs)
	c.Teardown()
}

// Nothing follows Shutdown's close frame: the write that carries it gets no
// acknowledging ping, and AckPing writes none after it.
func TestNoAckPingAfterShutdownClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := ackConn(t)
		var bufs []*frame.Buf
		owed := false
		for i := range 3 {
			b := textBuf(fmt.Sprint("m", i))
			bufs = append(bufs, b)
			_, must := c.Enqueue(b)
			owed = owed || must
		}
		c.Shutdown(closeBuf(frame.CloseGoingAway))
		if owed {
			c.Flush(nil)
		}
		synctest.Wait()
		fs := parseFrames(t, s.Bytes())
		if last := fs[len(fs)-1]; last.op != frame.OpClose {
			t.Fatalf("last frame op %d, want the close frame", last.op)
		}
		time.Sleep(ackPingMax)
		c.AckPing(nil)
		fs = parseFrames(t, s.Bytes())
		if last := fs[len(fs)-1]; last.op != frame.OpClose {
			t.Fatalf("after AckPing: last frame op %d, want the close frame", last.op)
		}
		releaseAll(bufs)
	})
}

// While Shutdown's close frame waits in the queue behind frames a slow
// peer has not read yet, AckPing writes no ping: it would go ahead of the
// queue, and the close frame must stay the last frame written.
func TestNoAckPingWhileShutdownDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newEnv(t, 64, 100)
		env.EnableResume()
		c, s := newConn(t, env, "a")
		m1 := sendAll(c, "m1")
		var pong [pingMarkLen]byte
		binary.BigEndian.PutUint64(pong[:], lastPing(t, s.Bytes()))
		c.OnPong(pong[:]) // m1 acknowledged; no ping outstanding
		s.stall()
		big := sendAll(c, strings.Repeat("x", 200)) // written, not read: past HighWater
		m3 := textBuf("m3")
		if _, must := c.Enqueue(m3); must {
			t.Fatal("Enqueue owes a flush while the connection is blocked")
		}
		c.Shutdown(closeBuf(frame.CloseGoingAway)) // behind m3
		time.Sleep(ackPingMax)
		writes := len(s.Writes())
		if again, _ := c.AckPing(nil); again || len(s.Writes()) != writes {
			t.Fatalf("AckPing while the close frame waits: again %v, %d writes after %d; want false and none", again, len(s.Writes()), writes)
		}
		s.drain()
		synctest.Wait()
		fs := parseFrames(t, s.Bytes())
		if last := fs[len(fs)-1]; last.op != frame.OpClose {
			t.Fatalf("last frame op %d, want the close frame", last.op)
		}
		if got := texts(t, s.Bytes()); len(got) != 3 || got[2] != "m3" {
			t.Fatalf("wrote %d messages, want m1, the large one and m3 before the close frame", len(got))
		}
		releaseAll(m1)
		releaseAll(big)
		m3.Release()
		c.Teardown()
	})
}

// closingSocket is a fakeSocket that, while it writes a ping alone (an
// AckPing), lets close run on another goroutine and gives it time to write
// its close frame before the ping is recorded.
type closingSocket struct {
	*fakeSocket
	close func()
	once  sync.Once
}

func (s *closingSocket) Write(b []byte) (int, error) {
	if len(b) == 2+pingMarkLen && b[0] == 0x80|frame.OpPing {
		s.once.Do(func() {
			go s.close()
			time.Sleep(50 * time.Millisecond)
		})
	}
	return s.fakeSocket.Write(b)
}

// An acknowledging ping that AckPing writes while the connection is closed
// (CloseWith) or taken over by a resume (Takeover) on another goroutine
// never follows the close frame on the wire.
func TestAckPingNotAfterCloseFrame(t *testing.T) {
	tests := []struct {
		name  string
		close func(c *Conn)
	}{
		{"CloseWith", func(c *Conn) { c.CloseWith(frame.CloseNormal, "bye") }},
		{"Takeover", func(c *Conn) { c.Takeover(frame.ClosePolicyViolation, "resumed elsewhere") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newResumeEnv(t, 64)
			fs := &fakeSocket{}
			s := &closingSocket{fakeSocket: fs}
			c := New(env, "a", "192.0.2.1", s)
			fs.c = c
			s.close = func() { tt.close(c) }
			m1 := sendAll(c, "m1")
			var pong [pingMarkLen]byte
			binary.BigEndian.PutUint64(pong[:], lastPing(t, s.Bytes()))
			m2 := sendAll(c, "m2") // within the interval: no ping appended
			c.OnPong(pong[:])      // m2 now waits for AckPing
			time.Sleep(ackPingMin)
			if again, _ := c.AckPing(nil); again {
				t.Fatal("AckPing asks again after the interval")
			}
			// The close ran while AckPing wrote: wait for its frame.
			closed := func() bool {
				for _, f := range parseFrames(t, fs.Bytes()) {
					if f.op == frame.OpClose {
						return true
					}
				}
				return false
			}
			for deadline := time.Now().Add(5 * time.Second); !closed(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no close frame written")
				}
			}
			frames := parseFrames(t, fs.Bytes())
			if last := frames[len(frames)-1]; last.op != frame.OpClose {
				t.Fatalf("last frame op %d, want the close frame: the acknowledging ping was written after it", last.op)
			}
			releaseAll(m1)
			releaseAll(m2)
			c.Teardown()
			time.Sleep(2 * takeoverLinger) // the takeover's close timer
		})
	}
}

// Once CloseWith decided the close frame, control frames (the heartbeat's
// pings, pongs to the client's pings) are not written any more: while the
// close frame lingers in flight nothing follows it.
func TestNoControlFrameAfterCloseWith(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newResumeEnv(t, 64)
		c, s := newConn(t, env, "a")
		m1 := sendAll(c, "m1")
		s.stall() // the close frame stays in flight: the connection lingers
		c.CloseWith(frame.CloseNormal, "bye")
		c.WriteControlTo(s, c.AppendPing(nil))
		c.WriteControlTo(s, []byte{0x80 | frame.OpPong, 0})
		fs := parseFrames(t, s.Bytes())
		if last := fs[len(fs)-1]; last.op != frame.OpClose {
			t.Fatalf("last frame op %d, want the close frame", last.op)
		}
		releaseAll(m1)
		time.Sleep(closeLinger) // the socket closes
		c.Teardown()
	})
}
