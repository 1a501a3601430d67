//go:build !race

package conn

import (
	"encoding/binary"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// The zero-allocation promise of the send path: queueing a shared frame
// and flushing it, once the ring pool and the scratch buffer are warm. The
// race detector makes sync.Pool drop items on purpose, hence the build tag.

func TestEnqueueFlushAllocs(t *testing.T) {
	for _, frames := range []int{1, 8, 64} {
		t.Run(fmt.Sprint(frames, " frames per flush"), func(t *testing.T) {
			env := newEnv(t, 256, 0)
			c, s := newConn(t, env, "a")
			s.discard = true
			frame := paddedBuf("m", 200)
			var scratch []byte
			cycle := func() {
				for range frames {
					c.Enqueue(frame)
				}
				scratch = c.Flush(scratch)
			}
			cycle() // warm up the ring pool and scratch
			if n := testing.AllocsPerRun(1000, cycle); n != 0 {
				t.Errorf("Enqueue x%d + Flush: %v allocs, want 0", frames, n)
			}
			if frame.Refs() != 1 {
				t.Fatalf("Refs = %d, want 1", frame.Refs())
			}
		})
	}
}

// TestSlowPeerAllocs: frames waiting behind HighWater and frames dropped
// from a full queue allocate nothing either.
func TestSlowPeerAllocs(t *testing.T) {
	env := newEnv(t, 256, 64)
	c, s := newConn(t, env, "a")
	s.discard = true
	s.stall()
	c.Send(paddedBuf("blocker", 100)) // flushing stops here
	frame := textBuf("m")
	n := testing.AllocsPerRun(1000, func() { c.Enqueue(frame) })
	if n != 0 {
		t.Errorf("Enqueue to a waiting or full queue: %v allocs, want 0", n)
	}
	c.Teardown()
}

// TestEnqueueFromAllocs: with flow control on, routing from a sender to a
// recipient that keeps up, and the sender's Park check after each message,
// allocate nothing.
func TestEnqueueFromAllocs(t *testing.T) {
	env := newEnv(t, 256, 0)
	env.Flow = true
	s, _ := newSender(t, env, "s")
	c, cs := newConn(t, env, "a")
	cs.discard = true
	frame := paddedBuf("m", 200)
	var scratch []byte
	cycle := func() {
		for range 64 {
			c.EnqueueFrom(frame, s)
		}
		if s.Park() {
			t.Fatal("held with 64 of 256 frames waiting")
		}
		scratch = c.Flush(scratch)
	}
	cycle()
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Errorf("EnqueueFrom x64 + Park + Flush: %v allocs, want 0", n)
	}
}

// TestResumeAllocs: with resume on, numbering a frame, keeping it for
// replay and acknowledging it by a ping round allocate nothing once the
// pools are warm.
func TestResumeAllocs(t *testing.T) {
	env := newEnv(t, 256, 0)
	env.EnableResume()
	c, s := newConn(t, env, "a")
	s.discard = true
	frame := paddedBuf("m", 200)
	var scratch []byte
	var ping []byte
	cycle := func() {
		for range 20 { // more than the small replay storage
			c.Enqueue(frame)
		}
		scratch = c.Flush(scratch)
		ping = c.AppendPing(ping[:0])
		c.OnPong(ping[2:])
	}
	cycle()
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Errorf("Enqueue x20 + Flush + ping round: %v allocs, want 0", n)
	}
	if c.Replayable() != 0 || frame.Refs() != 1 {
		t.Fatalf("Replayable %d, Refs %d", c.Replayable(), frame.Refs())
	}
}

// TestAckPingAllocs: the acknowledging pings of resume (a ping appended to
// a Flush's write, and AckPing's ping after it) and their pongs allocate
// nothing either.
func TestAckPingAllocs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newEnv(t, 256, 0)
		env.EnableResume()
		later := make([]*Conn, 0, 1)
		env.AckLater = func(c *Conn) { later = append(later, c) }
		c, s := newConn(t, env, "a")
		s.discard = true
		frame := paddedBuf("m", 200)
		var scratch, ping []byte
		var pong [8]byte
		cycle := func() {
			for range 4 {
				c.Enqueue(frame)
			}
			scratch = c.Flush(scratch) // appends a ping
			binary.BigEndian.PutUint64(pong[:], c.Sent())
			c.OnPong(pong[:])
			c.Enqueue(frame)
			scratch = c.Flush(scratch) // too soon: AckLater
			if len(later) != 1 {
				t.Fatalf("AckLater got %d Conns, want 1", len(later))
			}
			later = later[:0]
			time.Sleep(ackPingMax)
			if again, p := c.AckPing(ping); again {
				t.Fatal("AckPing asks again after the interval")
			} else {
				ping = p
			}
			binary.BigEndian.PutUint64(pong[:], c.Sent())
			c.OnPong(pong[:])
			time.Sleep(2 * ackPingMax) // the next cycle starts afresh
		}
		cycle()
		if n := testing.AllocsPerRun(100, cycle); n != 0 {
			t.Errorf("acknowledging pings and pongs: %v allocs, want 0", n)
		}
		if c.Replayable() != 0 || frame.Refs() != 1 {
			t.Fatalf("Replayable %d, Refs %d", c.Replayable(), frame.Refs())
		}
		c.Teardown()
	})
}

// TestEnqueueFlushDeflateAllocs: a peer that negotiated permessage-deflate
// costs no allocation either, whether its flush compresses the frame (the
// first recipient) or reuses the compressed form (every later one).
func TestEnqueueFlushDeflateAllocs(t *testing.T) {
	env := newEnv(t, 256, 0)
	env.CompressMin = 512
	first, s1 := newConn(t, env, "first")
	later, s2 := newConn(t, env, "later")
	first.Deflate, later.Deflate = true, true
	s1.discard, s2.discard = true, true
	var scratch []byte
	body := paddedBuf(`{"type":"publish","data":"`, 2000).Body()
	cycle := func() {
		b := frame.NewBuf(len(body))
		b.B = append(b.B, body...)
		b.Finish(frame.OpText)
		first.Enqueue(b)
		later.Enqueue(b)
		b.Release()
		scratch = first.Flush(scratch)
		scratch = later.Flush(scratch)
	}
	cycle() // warm the pools
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Errorf("compressed fan-out to two peers: %v allocs, want 0", n)
	}
}
