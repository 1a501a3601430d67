package conn

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// BenchmarkEnqueueFlush is one recipient's share of routing: queue frames,
// then one flush writes them (coalesced) to a socket that takes everything.
// With resume the frames are numbered and kept for replay, flushes append
// acknowledging pings as they fall due, and the client acknowledges every
// flush (a pong).
func BenchmarkEnqueueFlush(b *testing.B) {
	for _, tc := range []struct {
		frames int
		resume bool
	}{{1, false}, {16, false}, {1, true}, {16, true}} {
		name := fmt.Sprint("frames=", tc.frames)
		if tc.resume {
			name += "/resume"
		}
		frames := tc.frames
		b.Run(name, func(b *testing.B) {
			env := newEnv(b, 256, 0)
			if tc.resume {
				env.EnableResume()
			}
			c, s := newConn(b, env, "a")
			s.discard = true
			frame := paddedBuf("m", 200)
			b.ReportAllocs()
			b.SetBytes(int64(frames * len(frame.Bytes())))
			var scratch []byte
			for range frames {
				c.Enqueue(frame)
			}
			scratch = c.Flush(scratch) // warm up the ring pool and scratch
			var pong [pingMarkLen]byte
			for b.Loop() {
				for range frames {
					c.Enqueue(frame)
				}
				scratch = c.Flush(scratch)
				if tc.resume {
					binary.BigEndian.PutUint64(pong[:], c.Sent())
					c.OnPong(pong[:])
				}
			}
		})
	}
}

// BenchmarkRing pushes and pops 64 frames through a ring of the default
// queue size, wrapping around its end.
func BenchmarkRing(b *testing.B) {
	r := newRing(256 + 1)
	frame := textBuf("m")
	b.ReportAllocs()
	for b.Loop() {
		for range 64 {
			r.push(frame)
		}
		for range 64 {
			if r.pop() != frame {
				b.Fatal("lost a frame")
			}
		}
	}
}
