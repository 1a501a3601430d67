package session_test

import (
	"bytes"
	"testing"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
)

func TestBinary(t *testing.T) {
	joinBoth := func(a, b *peer) {
		a.send(`{"type":"join","room":"r"}`)
		b.send(`{"type":"join","room":"r"}`)
		a.all()
		b.all()
	}
	client := func(op, ctype byte, to, payload string) []byte {
		return append(frame.AppendClientHeader(nil, op, ctype, 9, to), payload...)
	}
	cases := []struct {
		name   string
		opts   rigOptions
		setup  func(a, b *peer)
		send   []byte
		to     string // the "to" bob sees in the server header; "-" for nothing delivered
		sender msg    // the error the sender gets, nil for none
		code   session.Code
	}{
		{name: "direct", send: client(frame.BinDirect, 3, "bob", "hello"), to: "", code: noError},
		{name: "publish", setup: joinBoth, send: client(frame.BinPublish, 3, "r", "hello"), to: "r", code: noError},
		{name: "broadcast", opts: rigOptions{router: router.Options{AllowBroadcast: true}},
			send: client(frame.BinBroadcast, 3, "", "hello"), to: "", code: noError},
		{name: "empty payload", send: client(frame.BinDirect, 0, "bob", ""), to: "", code: noError},
		{name: "allowed type", opts: rigOptions{binary: map[byte]int{3: 5}},
			send: client(frame.BinDirect, 3, "bob", "hello"), to: "", code: noError},
		{name: "direct to nobody", send: client(frame.BinDirect, 3, "carol", "x"), to: "-",
			sender: errMsg(session.CodePeerNotFound, nil), code: session.CodePeerNotFound},
		{name: "publish not a member", send: client(frame.BinPublish, 3, "r", "x"), to: "-",
			sender: errMsg(session.CodeNotMember, nil), code: session.CodeNotMember},
		{name: "broadcast disabled", send: client(frame.BinBroadcast, 3, "", "x"), to: "-",
			sender: errMsg(session.CodeForbidden, nil), code: session.CodeForbidden},
		{name: "bad version", send: []byte{9, frame.BinDirect, 0, 0, 0, 3, 'b', 'o', 'b'}, to: "-",
			sender: errMsg(session.CodeBadFrame, nil), code: session.CodeBadFrame},
		{name: "short header", send: []byte{frame.Version}, to: "-",
			sender: errMsg(session.CodeBadFrame, nil), code: session.CodeBadFrame},
		{name: "type not allowed", opts: rigOptions{binary: map[byte]int{3: 100}},
			send: client(frame.BinDirect, 4, "bob", "x"), to: "-",
			sender: errMsg(session.CodeTypeNotAllowed, nil), code: session.CodeTypeNotAllowed},
		{name: "type too large", opts: rigOptions{binary: map[byte]int{3: 4}},
			send: client(frame.BinDirect, 3, "bob", "hello"), to: "-",
			sender: errMsg(session.CodeTypeNotAllowed, nil), code: session.CodeTypeNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.router == (router.Options{}) {
				tc.opts.router = router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}
			} else {
				tc.opts.router.MaxRoomsPerPeer, tc.opts.router.MaxRoomPeers = 10, 10
			}
			r := newRig(t, tc.opts)
			a, b := r.connect("alice"), r.connect("bob")
			if tc.setup != nil {
				tc.setup(a, b)
			}
			a.sendOp(frame.OpBinary, tc.send)
			if tc.sender == nil {
				a.none()
			} else {
				match(t, "alice", a.next(), tc.sender)
			}
			checkErrors(t, r, tc.code)
			fs := b.all()
			if tc.to == "-" {
				if len(fs) != 0 {
					t.Fatalf("bob got %s", dump(fs))
				}
				return
			}
			if len(fs) != 1 || fs[0].op != frame.OpBinary {
				t.Fatalf("bob got %s, want one binary frame", dump(fs))
			}
			var h frame.Header
			payload, err := frame.ParseServerHeader(fs[0].payload, &h)
			if err != nil {
				t.Fatal(err)
			}
			var sent frame.Header
			want, _ := frame.ParseClientHeader(tc.send, &sent)
			if h.Op != sent.Op || h.CType != sent.CType || h.Flags != 9 || string(h.From) != "alice" ||
				string(h.To) != tc.to || !bytes.Equal(payload, want) {
				t.Fatalf("bob got op %d ctype %d flags %d from %q to %q payload %q",
					h.Op, h.CType, h.Flags, h.From, h.To, payload)
			}
		})
	}
}
