package router_test

import (
	"fmt"
	"testing"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// quietRoom returns a relay with a room "r" of members peers whose sockets
// keep nothing; the first one is the sender.
func quietRoom(t testing.TB, members int) (*relay, []*peer) {
	t.Helper()
	h := newRelay(t, defaultOpts)
	var peers []*peer
	for i := range members {
		p := h.newPeer(fmt.Sprintf("p%04d", i))
		p.sock.discard = true
		h.r.Register(p.Conn)
		if err := h.do(func(bt *router.Batch) error { return h.r.Join(p.Conn, "r", bt) }); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	return h, peers
}

var data = []byte(`{"sdp":"v=0","candidate":"candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host"}`)

// BenchmarkPublish1000 is one room message fanned out to 1,000 recipients
// and flushed; ns/delivery is the cost per recipient.
func BenchmarkPublish1000(b *testing.B) {
	const recipients = 1000
	h, peers := quietRoom(b, recipients+1)
	from := peers[0]
	var bt router.Batch
	var size int
	publish := func() {
		buf := frame.NewBuf(len(data) + 64)
		buf.B = frame.AppendPublish(buf.B, "r", from.ID, data)
		buf.Finish(frame.OpText)
		size = len(buf.Bytes())
		if err := h.r.Publish(from.Conn, "r", buf, &bt); err != nil {
			b.Fatal(err)
		}
		buf.Release()
		bt.Flush()
	}
	publish() // warm up
	b.ReportAllocs()
	b.SetBytes(int64(size * recipients))
	for b.Loop() {
		publish()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*recipients), "ns/delivery")
}

// BenchmarkDirect is one direct message: lookup, queue, flush.
func BenchmarkDirect(b *testing.B) {
	h, peers := quietRoom(b, 2)
	var bt router.Batch
	direct := func() {
		buf := frame.NewBuf(len(data) + 64)
		buf.B = frame.AppendDirect(buf.B, peers[0].ID, data)
		buf.Finish(frame.OpText)
		if err := h.r.Direct(peers[1].ID, buf, &bt); err != nil {
			b.Fatal(err)
		}
		buf.Release()
		bt.Flush()
	}
	direct() // warm up
	b.ReportAllocs()
	for b.Loop() {
		direct()
	}
}
