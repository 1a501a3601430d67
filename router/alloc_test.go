//go:build !race

package router_test

import (
	"testing"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// The zero-allocation promise of routing: once queues and batches are warm,
// routing a message and flushing its recipients allocates nothing, whether
// the caller reuses a Buf or takes one from the pool per message. The race
// detector makes sync.Pool drop items on purpose, hence the build tag.

func TestRoutingAllocs(t *testing.T) {
	h, peers := quietRoom(t, 100)
	from := peers[0]
	shared := frame.NewBuf(256)
	shared.B = frame.AppendPublish(shared.B, "r", from.ID, data)
	shared.Finish(frame.OpText)
	var bt router.Batch

	tests := []struct {
		name string
		f    func()
	}{
		{"Publish to 99, shared Buf", func() {
			_ = h.r.Publish(from.Conn, "r", shared, &bt)
			bt.Flush()
		}},
		{"Publish to 99, pooled Buf per message", func() {
			buf := frame.NewBuf(len(data) + 64)
			buf.B = frame.AppendPublish(buf.B, "r", from.ID, data)
			buf.Finish(frame.OpText)
			_ = h.r.Publish(from.Conn, "r", buf, &bt)
			buf.Release()
			bt.Flush()
		}},
		{"Direct, shared Buf", func() {
			_ = h.r.Direct("p0042", shared, &bt)
			bt.Flush()
		}},
		{"Direct, pooled Buf per message", func() {
			buf := frame.NewBuf(len(data) + 64)
			buf.B = frame.AppendDirect(buf.B, from.ID, data)
			buf.Finish(frame.OpText)
			_ = h.r.Direct("p0042", buf, &bt)
			buf.Release()
			bt.Flush()
		}},
		{"Direct to nobody", func() {
			_ = h.r.Direct("nobody", shared, &bt)
			bt.Flush()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f() // warm up queues, pools and the batch
			n := testing.AllocsPerRun(200, tt.f)
			t.Logf("%v allocs per message", n)
			if n != 0 {
				t.Errorf("%v allocs per routed message, want 0", n)
			}
			if shared.Refs() != 1 {
				t.Fatalf("shared Buf Refs = %d, want 1", shared.Refs())
			}
		})
	}
}
