package router_test

import (
	"errors"
	"slices"
	"testing"
	"time"

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
