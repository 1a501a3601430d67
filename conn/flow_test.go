package conn

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsrelay/wsrelay/stats"
)

// readerSocket is a fakeSocket whose reading flow control may pause: it
// counts the Resume calls, as the event loop would read the sender again.
type readerSocket struct {
	fakeSocket
	resumes atomic.Int32
}

func (s *readerSocket) Resume() { s.resumes.Add(1) }

// newSender returns a Conn that flow control may hold back.
func newSender(t testing.TB, env *Env, id string) (*Conn, *readerSocket) {
	t.Helper()
	s := &readerSocket{}
	c := New(env, id, "192.0.2.2", s)
	s.c = c
	return c, s
}

// flowEnv is an Env with flow control on and queues of 8 frames: senders
// are held from 4 waiting frames and released below 2.
func flowEnv(t testing.TB) *Env {
	t.Helper()
	env := newEnv(t, 8, 0)
	env.Flow = true
	env.StallTimeout = 100 * time.Millisecond
	return env
}

// fill queues n frames from s for r without flushing r.
func fill(t *testing.T, r, s *Conn, n int) {
	t.Helper()
	b := textBuf("m")
	defer b.Release()
	for range n {
		r.EnqueueFrom(b, s)
	}
}

// holdSender returns a sender s on socket ss and a recipient r on socket
// rs in env, with 4 frames from s waiting in r: enough to hold s back at
// its next Park.
func holdSender(t *testing.T, env *Env) (s *Conn, ss *readerSocket, r *Conn, rs *fakeSocket) {
	t.Helper()
	s, ss = newSender(t, env, "s")
	r, rs = newConn(t, env, "r")
	fill(t, r, s, 4)
	return s, ss, r, rs
}

func TestFlowHoldAndRelease(t *testing.T) {
	env := flowEnv(t)
	s, ss := newSender(t, env, "s")
	r, _ := newConn(t, env, "r")

	fill(t, r, s, 3)
	if s.Park() {
		t.Fatal("Park with 3 of 8 frames waiting: held, want not")
	}
	fill(t, r, s, 1)
	if !s.Park() {
		t.Fatal("Park with 4 of 8 frames waiting: not held, want held")
	}
	if !s.Paused() || env.Stats.FlowPausedNow() != 1 || env.Stats.FlowPauses() != 1 {
		t.Fatalf("paused %v, gauge %d, pauses %d; want true, 1, 1", s.Paused(), env.Stats.FlowPausedNow(), env.Stats.FlowPauses())
	}
	if ss.resumes.Load() != 0 {
		t.Fatal("resumed before the recipient drained")
	}
	r.Flush(nil) // the queue empties: below 2
	if ss.resumes.Load() != 1 || s.Paused() {
		t.Fatalf("after the recipient drained: %d resumes, paused %v; want 1, false", ss.resumes.Load(), s.Paused())
	}
	if env.Stats.FlowPausedNow() != 0 {
		t.Fatalf("paused gauge = %d after resume, want 0", env.Stats.FlowPausedNow())
	}
	if env.Stats.DroppedBy(stats.DropQueueFull) != 0 {
		t.Fatal("frames dropped")
	}
	// Released before the reader parked: it goes on at once.
	fill(t, r, s, 4)
	r.Flush(nil)
	if s.Park() || ss.resumes.Load() != 1 {
		t.Fatal("Park after the recipient already released: held, want not")
	}
}

func TestFlowWaitsForEveryRecipient(t *testing.T) {
	env := flowEnv(t)
	s, ss := newSender(t, env, "s")
	r1, _ := newConn(t, env, "r1")
	r2, _ := newConn(t, env, "r2")
	fill(t, r1, s, 4)
	fill(t, r2, s, 5)
	if !s.Park() {
		t.Fatal("not held")
	}
	r1.Flush(nil)
	if ss.resumes.Load() != 0 {
		t.Fatal("resumed while r2 still holds the sender")
	}
	r2.Flush(nil)
	if ss.resumes.Load() != 1 {
		t.Fatalf("%d resumes once both drained, want 1", ss.resumes.Load())
	}
}

// probeSocket records, at every write, how many frames still wait in its
// Conn's queue and how often the sender was resumed by then.
type probeSocket struct {
	c       *Conn
	resumes *atomic.Int32
	seen    [][2]int // {queued, resumes} at each write
}

func (p *probeSocket) Write(b []byte) (int, error) {
	p.seen = append(p.seen, [2]int{p.c.Queued(), int(p.resumes.Load())})
	p.c.Written(len(b))
	return len(b), nil
}

func (p *probeSocket) Close() error { return nil }

// A recipient holds a sender once per backlog, however many frames it
// sends, and releases it only below a quarter of the queue.
func TestFlowReleaseBelowAQuarter(t *testing.T) {
	env := newEnv(t, 256, 0)
	env.Flow = true
	s, ss := newSender(t, env, "s")
	ps := &probeSocket{resumes: &ss.resumes}
	r := New(env, "r", "192.0.2.1", ps)
	ps.c = r
	fill(t, r, s, 200)
	if !s.Park() {
		t.Fatal("not held with 200 of 256 frames waiting")
	}
	if r.waitersLen() != 1 || s.holds.Load() != 1|parked {
		t.Fatalf("%d waiters, holds %#x; want one hold", r.waitersLen(), s.holds.Load())
	}
	r.Flush(nil) // 64 frames per write: 136, 72, 8, then none left waiting
	want := [][2]int{{136, 0}, {72, 0}, {8, 1}, {0, 1}}
	if fmt.Sprint(ps.seen) != fmt.Sprint(want) {
		t.Fatalf("{queued, resumes} at each write = %v, want %v", ps.seen, want)
	}
}

func TestFlowStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := flowEnv(t)
		s, ss, r, _ := holdSender(t, env)
		if !s.Park() {
			t.Fatal("not held")
		}
		time.Sleep(env.StallTimeout - time.Millisecond)
		synctest.Wait()
		if ss.resumes.Load() != 0 || r.Stalled() {
			t.Fatal("stalled before StallTimeout")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if ss.resumes.Load() != 1 || !r.Stalled() {
			t.Fatalf("after StallTimeout: %d resumes, stalled %v; want 1, true", ss.resumes.Load(), r.Stalled())
		}
		if got := env.Stats.FlowPausedNow(); got != 0 {
			t.Fatalf("paused gauge = %d, want 0", got)
		}

		// Stalled: holds no one, drops when full, as in version 1.
		fill(t, r, s, 6)
		if s.Park() {
			t.Fatal("a stalled recipient held the sender")
		}
		if got := env.Stats.DroppedBy(stats.DropQueueFull); got != 2 {
			t.Fatalf("queue_full drops = %d, want 2", got)
		}

		// Its queue empties: it keeps up again and holds the next burst.
		r.Flush(nil)
		if r.Stalled() {
			t.Fatal("still stalled with an empty queue")
		}
		fill(t, r, s, 4)
		if !s.Park() {
			t.Fatal("not held after the stalled recipient caught up")
		}
		r.Flush(nil)
		if ss.resumes.Load() != 2 {
			t.Fatalf("%d resumes, want 2", ss.resumes.Load())
		}
	})
}

// A backlog that ends before StallTimeout does not stall its recipient
// when the timer of an earlier backlog fires late.
func TestFlowNewBacklogRestartsTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := flowEnv(t)
		s, ss, r, _ := holdSender(t, env)
		s.Park()
		time.Sleep(env.StallTimeout / 2)
		r.Flush(nil) // first backlog ends
		fill(t, r, s, 4)
		s.Park() // second backlog begins
		time.Sleep(env.StallTimeout/2 + time.Millisecond)
		synctest.Wait()
		if r.Stalled() || ss.resumes.Load() != 1 {
			t.Fatalf("stalled %v with %d resumes %v into the second backlog", r.Stalled(), ss.resumes.Load(), env.StallTimeout/2)
		}
		time.Sleep(env.StallTimeout / 2)
		synctest.Wait()
		if !r.Stalled() || ss.resumes.Load() != 2 {
			t.Fatalf("stalled %v with %d resumes after the second backlog's StallTimeout", r.Stalled(), ss.resumes.Load())
		}
	})
}

func TestFlowClose(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close func(r *Conn)
		state string // of the recipient after close
	}{
		{"recipient closes", (*Conn).Teardown, "closed"},
		{"recipient sends a close frame", func(r *Conn) { r.CloseWith(1000, "") }, "closing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, ss, r, _ := holdSender(t, flowEnv(t))
			s.Park()
			tt.close(r)
			if ss.resumes.Load() != 1 {
				t.Fatalf("a %s recipient still holds its sender", tt.state)
			}
		})
	}
	t.Run("sender closes while paused", func(t *testing.T) {
		env := flowEnv(t)
		s, ss, r, _ := holdSender(t, env)
		s.Park()
		s.Teardown()
		if env.Stats.FlowPausedNow() != 0 || s.Paused() {
			t.Fatal("a closed sender still counts as paused")
		}
		r.Flush(nil)
		if ss.resumes.Load() != 0 || env.Stats.FlowPausedNow() != 0 {
			t.Fatalf("closed sender: %d resumes, gauge %d; want 0, 0", ss.resumes.Load(), env.Stats.FlowPausedNow())
		}
	})
}

func TestFlowNeverHolds(t *testing.T) {
	t.Run("flow control off", func(t *testing.T) {
		env := flowEnv(t)
		env.Flow = false
		s, _ := newSender(t, env, "s")
		r, _ := newConn(t, env, "r")
		fill(t, r, s, 10)
		if s.Park() {
			t.Fatal("held with flow control off")
		}
		if got := env.Stats.DroppedBy(stats.DropQueueFull); got != 2 {
			t.Fatalf("queue_full drops = %d, want 2", got)
		}
	})
	t.Run("sender that cannot pause", func(t *testing.T) {
		env := flowEnv(t)
		s, _ := newConn(t, env, "s") // its socket has no Resume
		r, _ := newConn(t, env, "r")
		fill(t, r, s, 8)
		if s.Park() {
			t.Fatal("held a sender that cannot be resumed")
		}
	})
	t.Run("no local sender", func(t *testing.T) {
		env := flowEnv(t)
		r, _ := newConn(t, env, "r")
		fill(t, r, nil, 8)
		if r.waitersLen() != 0 {
			t.Fatal("holds a nil sender")
		}
	})
}

func (c *Conn) waitersLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// heldWithResume returns, on a flowEnv with session resume on, a sender s
// on socket ss held back by a recipient r on socket rs: 4 of r's 8 frames
// wait, all from s.
func heldWithResume(t *testing.T) (env *Env, s *Conn, ss *readerSocket, r *Conn, rs *fakeSocket) {
	t.Helper()
	env = flowEnv(t)
	env.EnableResume()
	s, ss, r, rs = holdSender(t, env)
	if !s.Park() {
		t.Fatal("not held with 4 of 8 frames waiting")
	}
	return env, s, ss, r, rs
}

// TestFlowDetached: with session resume, a detached recipient drains
// nothing until it is resumed, so it never holds a sender back: detaching
// releases the senders it held, and frames for it are queued, then dropped
// as queue_full, without pausing anyone. A sender that detaches while
// paused is paused no more, and its next socket is the one resumed.
func TestFlowDetached(t *testing.T) {
	t.Run("recipient", func(t *testing.T) {
		env, s, ss, r, rs := heldWithResume(t)
		if res := r.Detach(rs); res != Detached {
			t.Fatalf("Detach = %v, want Detached", res)
		}
		if ss.resumes.Load() != 1 || s.Paused() || env.Stats.FlowPausedNow() != 0 {
			t.Fatalf("after the recipient detached: %d resumes, paused %v, gauge %d; want 1, false, 0",
				ss.resumes.Load(), s.Paused(), env.Stats.FlowPausedNow())
		}
		fill(t, r, s, 5) // 8 queued, one dropped
		if s.Park() || r.waitersLen() != 0 {
			t.Fatal("a detached recipient holds its sender")
		}
		if got := env.Stats.DroppedBy(stats.DropQueueFull); got != 1 {
			t.Fatalf("queue_full drops = %d, want 1", got)
		}
		r.Expire()
		s.Teardown()
	})
	t.Run("sender", func(t *testing.T) {
		env, s, ss, r, _ := heldWithResume(t)
		if res := s.Detach(ss); res != Detached {
			t.Fatalf("Detach = %v, want Detached", res)
		}
		if s.Paused() || env.Stats.FlowPausedNow() != 0 {
			t.Fatalf("a detached sender: paused %v, gauge %d; want false, 0", s.Paused(), env.Stats.FlowPausedNow())
		}
		next := &readerSocket{}
		next.c = s
		if _, ok := s.Attach(next, 0, welcomeOf("welcome")); !ok {
			t.Fatal("Attach refused")
		}
		fill(t, r, s, 1) // still 4 or more waiting: held again
		if !s.Park() {
			t.Fatal("not held again on the new socket")
		}
		r.Flush(nil)
		if ss.resumes.Load() != 0 || next.resumes.Load() != 1 {
			t.Fatalf("resumes: old socket %d, new socket %d; want 0, 1", ss.resumes.Load(), next.resumes.Load())
		}
		r.Teardown()
		s.Teardown()
	})
}
