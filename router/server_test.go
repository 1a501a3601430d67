package router_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

func TestPublishAll(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b, c := h.connect("a"), h.connect("b"), h.connect("c")
	h.join(a, "r")
	h.join(b, "r")
	a.received(t)
	b.received(t)
	msg := `{"type":"publish","room":"r","from":"@server","data":1}`
	buf := textBuf(msg)
	var n int
	h.do(func(bt *router.Batch) error { n = h.r.PublishAll("r", buf, bt); return nil })
	if n != 2 {
		t.Fatalf("PublishAll = %d recipients, want 2", n)
	}
	a.expect(t, msg) // every member, no sender to skip
	b.expect(t, msg)
	c.expect(t)
	if buf.Refs() != 1 {
		t.Fatalf("Refs = %d, want 1", buf.Refs())
	}

	h.do(func(bt *router.Batch) error { n = h.r.PublishAll("empty", buf, bt); return nil })
	if n != 0 || h.st.DroppedBy(stats.DropNoRoute) != 1 {
		t.Fatalf("PublishAll to an empty room = %d, no_route drops %d; want 0 and 1", n, h.st.DroppedBy(stats.DropNoRoute))
	}
}

func TestBroadcastAllIgnoresTheSwitch(t *testing.T) {
	h := newRelay(t, defaultOpts) // AllowBroadcast false
	peers := []*peer{h.connect("a"), h.connect("b")}
	msg := `{"type":"broadcast","from":"@server","data":1}`
	var n int
	h.do(func(bt *router.Batch) error { n = h.r.BroadcastAll(textBuf(msg), bt); return nil })
	if n != 2 {
		t.Fatalf("BroadcastAll = %d recipients, want 2", n)
	}
	for _, p := range peers {
		p.expect(t, msg)
	}
}

func TestDisconnect(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a := h.connect("a")
	if err := h.r.Disconnect("nobody", 4000, "x"); !errors.Is(err, router.ErrPeerNotFound) {
		t.Fatalf("Disconnect of an unknown peer = %v, want ErrPeerNotFound", err)
	}
	// A message queued before the disconnect goes out before the close
	// frame; one routed after it is refused.
	var bt router.Batch
	if err := h.r.Direct("a", textBuf(`{"type":"direct","from":"@server","data":"bye"}`), &bt); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Disconnect("a", 4321, "banned"); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	bt.Flush()
	_ = h.do(func(bt *router.Batch) error { return h.r.Direct("a", textBuf(`{"late":1}`), bt) })
	deadline := time.Now().Add(2 * time.Second)
	for !a.sock.closed() {
		if time.Now().After(deadline) {
			t.Fatal("socket not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	frames := parseFrames(t, a.sock.take())
	if len(frames) != 2 || string(frames[0].payload) != `{"type":"direct","from":"@server","data":"bye"}` ||
		frames[1].op != frame.OpClose || string(frames[1].payload) != "\x10\xe1banned" {
		t.Fatalf("a got %q, want the direct message then close 4321 banned", frames)
	}
}

func TestRoomMembers(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b := h.connect("a"), h.connect("b")
	h.join(a, "r")
	h.join(b, "r")
	got := h.r.RoomMembers("r")
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("RoomMembers = %q", got)
	}
	if got := h.r.RoomMembers("none"); got != nil {
		t.Fatalf("RoomMembers of an empty room = %q, want nil", got)
	}
}

// TestDisconnectStalledPeer: a peer that reads nothing cannot hold a
// disconnect open: after DisconnectGrace its queue is discarded and the
// close frame written, and the socket closes.
func TestDisconnectStalledPeer(t *testing.T) {
	h := newRelay(t, defaultOpts)
	h.e.HighWater = 1 // the first frame in flight blocks the queue
	s := &stallSocket{}
	c := conn.New(h.e, "slow", "192.0.2.1", s)
	h.r.Register(c)
	for range 5 {
		_ = h.do(func(bt *router.Batch) error { return h.r.Direct("slow", textBuf(`{"n":1}`), bt) })
	}
	start := time.Now()
	if err := h.r.Disconnect("slow", 4001, "bye"); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(router.DisconnectGrace + 3*time.Second)
	for !s.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the stalled peer's socket is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waited := time.Since(start); waited < router.DisconnectGrace {
		t.Fatalf("closed after %v, before the grace of %v", waited, router.DisconnectGrace)
	}
	frames := parseFrames(t, s.bytes())
	last := frames[len(frames)-1]
	if last.op != frame.OpClose || string(last.payload) != "\x0f\xa1bye" {
		t.Fatalf("last frame %d %q, want close 4001 bye", last.op, last.payload)
	}
}

// stallSocket takes every write and never reports it written, like a peer
// whose receive window is closed.
type stallSocket struct {
	mu     sync.Mutex
	data   []byte
	closed bool
}

func (s *stallSocket) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = append(s.data, b...)
	return len(b), nil
}

func (s *stallSocket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *stallSocket) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *stallSocket) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data...)
}
