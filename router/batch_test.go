package router_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// TestBatchHandoff: a pass that touched Handoff recipients or more is
// written by the Drainer, in order and coalesced; a smaller one at once.
func TestBatchHandoff(t *testing.T) {
	h := newRelay(t, defaultOpts)
	var peers []*peer
	for i := range 8 {
		p := h.connect(fmt.Sprintf("p%d", i))
		h.join(p, "r")
		peers = append(peers, p)
	}
	for _, p := range peers {
		p.sock.take()
	}
	publish := func(bt *router.Batch, text string) {
		t.Helper()
		buf := frame.NewBuf(64)
		buf.B = frame.AppendPublish(buf.B, "r", "p0", []byte(`"`+text+`"`))
		buf.Finish(frame.OpText)
		if err := h.r.Publish(peers[0].Conn, "r", buf, bt); err != nil {
			t.Fatal(err)
		}
		buf.Release()
	}

	small := router.Batch{Handoff: 8} // 7 recipients: below the threshold
	publish(&small, "now")
	small.Flush()
	for _, p := range peers[1:] {
		if got := len(parseFrames(t, p.sock.take())); got != 1 {
			t.Fatalf("%s: %d frames right after a small flush, want 1", p.ID, got)
		}
	}

	// A member whose socket blocks proves that the big flush is not
	// written on the caller's goroutine.
	gate := &gatedSocket{}
	gated := conn.New(h.e, "gated", "192.0.2.1", gate)
	gate.c = gated
	h.r.Register(gated)
	var jb router.Batch
	if err := h.r.Join(gated, "r", &jb); err != nil {
		t.Fatal(err)
	}
	jb.Flush()
	open := make(chan struct{})
	gate.hold.Store(&open)
	for _, p := range peers {
		p.sock.take()
	}

	before := make([]int, len(peers))
	for i, p := range peers {
		before[i] = p.sock.writeCount()
	}
	big := router.Batch{Handoff: 2}
	publish(&big, "a")
	publish(&big, "b")
	if big.Len() != 8 {
		t.Fatalf("batch holds %d recipients, want 8 (each once)", big.Len())
	}
	flushed := make(chan struct{})
	go func() { big.Flush(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(5 * time.Second):
		t.Fatal("Flush of a big batch blocked on a recipient's socket")
	}
	close(open)
	if big.Len() != 0 {
		t.Fatalf("batch holds %d recipients after Flush", big.Len())
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, p := range peers[1:] {
		var got []byte
		for len(parseFrames(t, got)) < 2 && time.Now().Before(deadline) {
			got = append(got, p.sock.take()...)
			time.Sleep(time.Millisecond)
		}
		fs := parseFrames(t, got)
		if len(fs) != 2 || string(fs[0].payload) != `{"type":"publish","room":"r","from":"p0","data":"a"}` ||
			string(fs[1].payload) != `{"type":"publish","room":"r","from":"p0","data":"b"}` {
			t.Fatalf("%s got %q, want publish a then b", p.ID, got)
		}
		if n := p.sock.writeCount() - before[i+1]; n != 1 {
			t.Errorf("%s: a and b took %d writes, want 1", p.ID, n)
		}
	}
}

func (s *fakeSocket) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// gatedSocket blocks every Write, while hold is set, until the channel
// hold points to is closed.
type gatedSocket struct {
	c    *conn.Conn
	hold atomic.Pointer[chan struct{}]
}

func (s *gatedSocket) Write(b []byte) (int, error) {
	if ch := s.hold.Load(); ch != nil {
		<-*ch
	}
	s.c.Written(len(b))
	return len(b), nil
}

func (s *gatedSocket) Close() error { return nil }
