//go:build !race

package session_test

import (
	"testing"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// Routing a message through a session allocates nothing: not the envelope
// scan, the dispatch, the outgoing frame, the ack nor the error path.
func TestMessageAllocs(t *testing.T) {
	r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}})
	a, b, c := r.connect("alice"), r.connect("bob"), r.connect("carol")
	for _, p := range []*peer{a, b, c} {
		p.send(`{"type":"join","room":"r"}`)
	}
	binMsg := append(frame.AppendClientHeader(nil, frame.BinDirect, 1, 0, "bob"), "payload"...)
	for _, tc := range []struct {
		name string
		op   byte
		msg  []byte
	}{
		{"direct", frame.OpText, []byte(`{"type":"direct","to":"bob","data":{"n":1}}`)},
		{"direct with ack", frame.OpText, []byte(`{"type":"direct","to":"bob","data":{"n":1},"id":42}`)},
		{"publish", frame.OpText, []byte(`{"type":"publish","room":"r","data":"x"}`)},
		{"binary direct", frame.OpBinary, binMsg},
		{"peer not found", frame.OpText, []byte(`{"type":"direct","to":"dave","data":1}`)},
		{"unknown type", frame.OpText, []byte(`{"type":"nope"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send := func() {
				a.sendOp(tc.op, tc.msg)
				for _, p := range []*peer{a, b, c} {
					p.sock.mu.Lock()
					p.sock.out = p.sock.out[:0]
					p.sock.mu.Unlock()
				}
			}
			send()
			if n := testing.AllocsPerRun(1000, send); n != 0 {
				t.Fatalf("%.2f allocations per message, want 0", n)
			}
		})
	}
}

// Checking a join against the credential's rooms allocates nothing: a join
// the claim refuses costs its error frame from the pool and nothing else.
func TestJoinRefusedAllocs(t *testing.T) {
	r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10}})
	rooms, err := auth.ParseRooms([]string{"lobby", "game:42:*", "org/a", "org/b"})
	if err != nil {
		t.Fatal(err)
	}
	a := r.connectRooms("alice", rooms)
	msg := []byte(`{"type":"join","room":"game:43:lobby","id":7}`)
	a.send(string(msg))
	if got := a.next(); got["code"] != "forbidden" || got["id"] != 7.0 {
		t.Fatalf("got %v, want forbidden with id 7", got)
	}
	send := func() {
		a.sendOp(frame.OpText, msg)
		a.sock.mu.Lock()
		a.sock.out = a.sock.out[:0]
		a.sock.mu.Unlock()
	}
	send()
	if n := testing.AllocsPerRun(1000, send); n != 0 {
		t.Fatalf("%.2f allocations per refused join, want 0", n)
	}
}
