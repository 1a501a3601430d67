package conn

import (
	"fmt"
	"testing"
)

// BenchmarkEnqueueFlush is one recipient's share of routing: queue frames,
// then one flush writes them (coalesced) to a socket that takes everything.
func BenchmarkEnqueueFlush(b *testing.B) {
	for _, frames := range []int{1, 16} {
		b.Run(fmt.Sprint("frames=", frames), func(b *testing.B) {
			env := newEnv(b, 256, 0)
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
			for b.Loop() {
				for range frames {
					c.Enqueue(frame)
				}
				scratch = c.Flush(scratch)
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
