package conn

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// closingConn returns, as newConn, a Conn "a" with a queue of 8 frames and
// highWater, in a new Env; when stalled its socket reports nothing written
// until drained.
func closingConn(t testing.TB, highWater int64, stalled bool) (*Env, *Conn, *fakeSocket) {
	t.Helper()
	env := newEnv(t, 8, highWater)
	c, s := newConn(t, env, "a")
	if stalled {
		s.stall()
	}
	return env, c, s
}

func TestCloseWith(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		reason  string
		queued  int
		stalled bool // the close frame does not reach the kernel at once
	}{
		{"normal, idle", frame.CloseNormal, "", 0, false},
		{"policy with queued frames", frame.ClosePolicyViolation, "rate limit", 3, false},
		{"replaced with a full queue", frame.CloseReplaced, "replaced", 8, false},
		{"stalled peer", frame.CloseTooBig, "too big", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env, c, s := closingConn(t, 0, tt.stalled)
				bufs, owed := enqueueTexts(c, tt.queued)
				c.CloseWith(tt.code, tt.reason)
				if owed {
					c.Flush(nil) // the flush owed before the close writes nothing
				}
				c.CloseWith(frame.CloseGoingAway, "again") // ignored

				fs := parseFrames(t, s.Bytes())
				if len(fs) != 1 {
					t.Fatalf("socket got %d frames, want only the close frame", len(fs))
				}
				code, reason := parseClose(t, fs[0])
				if code != tt.code || reason != tt.reason {
					t.Fatalf("close frame %d %q, want %d %q", code, reason, tt.code, tt.reason)
				}
				if got := metric(t, env.Stats, discardedMetric); got != float64(tt.queued) {
					t.Errorf("%s = %v, want %d", discardedMetric, got, tt.queued)
				}
				for i, b := range bufs {
					if r := b.Refs(); r != 1 {
						t.Errorf("frame %d: Refs = %d after CloseWith, want 1", i, r)
					}
				}
				if c.HasQueue() {
					t.Error("HasQueue after CloseWith")
				}
				if q, m := c.Enqueue(textBuf("late")); q || m {
					t.Errorf("Enqueue after CloseWith = %v, %v; want false, false", q, m)
				}
				if tt.stalled {
					if s.Closed() {
						t.Fatal("socket closed before the close frame was written")
					}
					s.drain()
					synctest.Wait()
				}
				if !s.Closed() {
					t.Fatal("socket not closed")
				}
			})
		})
	}
}

func TestCloseWithLingerLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newEnv(t, 8, 0)
		c, s := newConn(t, env, "a")
		s.stall()
		c.CloseWith(frame.CloseNormal, "")
		time.Sleep(closeLinger - time.Millisecond)
		if s.Closed() {
			t.Fatal("socket closed before the linger time")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if !s.Closed() {
			t.Fatalf("a peer that never reads: socket still open %v after CloseWith", closeLinger)
		}
	})
}

// enqueueTexts enqueues the text frames m0, m1, … (n of them) on c, as
// enqueueAll.
func enqueueTexts(c *Conn, n int) ([]*frame.Buf, bool) {
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("m%d", i)
	}
	return enqueueAll(c, bodies...)
}

func closeBuf(code int) *frame.Buf {
	b := frame.NewBuf(2)
	b.B = append(b.B, byte(code>>8), byte(code))
	b.Finish(frame.OpClose)
	return b
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name    string
		queued  int
		stalled bool // frames wait behind HighWater until the peer reads
	}{
		{"idle", 0, false},
		{"queued frames", 3, false},
		{"full queue", 8, false},
		{"stalled peer", 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env, c, s := closingConn(t, 64, tt.stalled)
				if tt.stalled {
					c.Send(paddedBuf("blocker", 100)) // crosses HighWater
				}
				bufs, owed := enqueueTexts(c, tt.queued)
				var want []byte
				for _, b := range bufs {
					want = append(want, b.Bytes()...)
				}
				cf := closeBuf(frame.CloseGoingAway)
				c.Shutdown(cf)
				if q, _ := c.Enqueue(textBuf("late")); q {
					t.Fatal("Enqueue after Shutdown queued a frame")
				}
				if got := env.Stats.DroppedBy(stats.DropQueueFull); got != 0 {
					t.Fatalf("a frame refused after Shutdown counted as a queue_full drop (%d)", got)
				}
				if owed {
					c.Flush(nil)
				}
				if tt.stalled {
					synctest.Wait()
					if s.Closed() {
						t.Fatal("socket closed while frames were waiting")
					}
					s.drain()
				}
				synctest.Wait()

				got := s.Bytes()
				if tt.stalled {
					got = got[len(paddedBuf("blocker", 100).Bytes()):]
				}
				if !bytes.HasPrefix(got, want) {
					t.Fatal("queued frames not delivered in order before the close frame")
				}
				fs := parseFrames(t, got[len(want):])
				if len(fs) != 1 {
					t.Fatalf("%d frames after the queued ones, want the close frame", len(fs))
				}
				if code, _ := parseClose(t, fs[0]); code != frame.CloseGoingAway {
					t.Fatalf("close code %d, want %d", code, frame.CloseGoingAway)
				}
				if !s.Closed() {
					t.Fatal("socket not closed after the close frame")
				}
				for i, b := range append(bufs, cf) {
					if r := b.Refs(); r != 1 {
						t.Errorf("buf %d: Refs = %d, want 1", i, r)
					}
				}
				if got := metric(t, env.Stats, discardedMetric); got != 0 {
					t.Errorf("%s = %v, want 0", discardedMetric, got)
				}
			})
		})
	}
}

func TestTeardown(t *testing.T) {
	tests := []struct {
		name   string
		queued int
	}{
		{"idle", 0},
		{"some queued", 3},
		{"full queue", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, 8, 64)
			c, s := newConn(t, env, "a")
			s.stall()
			c.Send(paddedBuf("blocker", 100))
			bufs, _ := enqueueTexts(c, tt.queued)
			c.Teardown()
			for i, b := range bufs {
				if r := b.Refs(); r != 1 {
					t.Errorf("frame %d: Refs = %d after Teardown, want 1", i, r)
				}
			}
			if got := metric(t, env.Stats, discardedMetric); got != float64(tt.queued) {
				t.Errorf("%s = %v, want %d", discardedMetric, got, tt.queued)
			}
			if c.HasQueue() {
				t.Error("HasQueue after Teardown")
			}
			if q, m := c.Enqueue(textBuf("late")); q || m {
				t.Errorf("Enqueue after Teardown = %v, %v; want false, false", q, m)
			}
			c.Teardown() // counts nothing twice
			if got := metric(t, env.Stats, discardedMetric); got != float64(tt.queued) {
				t.Errorf("after a second Teardown %s = %v, want %d", discardedMetric, got, tt.queued)
			}
		})
	}
}

func TestWriteControlGoesAhead(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, s := newConn(t, env, "a")
	c.Enqueue(textBuf("queued"))
	ping := frame.AppendFrameHeader(nil, frame.OpPing, 0)
	c.WriteControl(ping)
	c.Flush(nil)
	fs := parseFrames(t, s.Bytes())
	if len(fs) != 2 || fs[0].op != frame.OpPing || string(fs[1].payload) != "queued" {
		t.Fatalf("got %v, want the ping then the queued frame", fs)
	}
	c.Teardown()
	c.WriteControl(ping)
	if n := len(s.Writes()); n != 2 {
		t.Fatalf("WriteControl after Teardown wrote (%d writes, want 2)", n)
	}
}

// blockingSocket holds its first Write until release is closed.
type blockingSocket struct {
	fakeSocket
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingSocket) Write(b []byte) (int, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.release
	}
	return s.fakeSocket.Write(b)
}

// TestCloseDuringFlushComesLast: a close decided while a flush is writing
// frames it already took from the queue is written after them, never before
// (nothing may follow a close frame, RFC 6455 section 5.5.1).
func TestCloseDuringFlushComesLast(t *testing.T) {
	env := newEnv(t, 8, 0)
	s := &blockingSocket{entered: make(chan struct{}), release: make(chan struct{})}
	c := New(env, "a", "192.0.2.1", s)
	s.c = c
	b := textBuf("data")
	defer b.Release()
	if _, flush := c.Enqueue(b); !flush {
		t.Fatal("first Enqueue owes no flush")
	}
	done := make(chan struct{})
	go func() {
		c.Flush(nil)
		close(done)
	}()
	<-s.entered // the flush is inside Write with the data frame
	c.CloseWith(4001, "replaced")
	close(s.release)
	<-done
	w := s.Writes()
	if len(w) != 2 || w[0][0] != 0x80|frame.OpText || w[1][0] != 0x80|frame.OpClose {
		t.Fatalf("writes = %x, want the data frame then the close frame", w)
	}
	if code := int(w[1][2])<<8 | int(w[1][3]); code != 4001 {
		t.Fatalf("close code %d", code)
	}
	if !s.Closed() {
		t.Fatal("socket not closed")
	}
}

// TestSendPathConcurrent races producers, a peer that reads in bursts and
// a close against each other (run it with -race). Whatever the interleaving,
// each producer's frames arrive whole and in order, the close frame comes
// last and only once, every frame queued is either written or counted as
// discarded at close, no reference leaks and the socket ends closed.
