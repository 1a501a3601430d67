package session_test

import (
	"encoding/json"
	"testing"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// FuzzOnMessage hands arbitrary messages to a session whose peer is in a
// room with another: nothing panics, the session never stops reading a peer
// that is not rate limited, and every text frame either peer receives is a
// JSON object with a type, every binary frame a valid server header.
func FuzzOnMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`, `{"type":"direct","to":"bob","data":1,"id":1}`,
		`{"type":"publish","room":"r","data":{"a":[1,2]}}`, `{"type":"join","room":"r2","id":"x"}`,
		`{"type":"leave","room":"r"}`, `{"type":"broadcast","data":null}`, `{"type":"nope"}`,
		`{"type":"direct","to":"bob","data":"\u00e9\"","id":-1.5e3}`, `{`, `[]`, ``,
		`{"type":"join","room":"r3","token":"eyJh.eyJz.c2ln","id":2}`, `{"type":"join","room":"r3","token":7}`,
		// A room token for alice and r3 under the rig's secret, valid until 2100.
		`{"type":"join","room":"r3","token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvb20iOiJyMyIsImV4cCI6NDEwMjQ0NDgwMH0.eDLqkovoNxPDTFFuQsH3qnUwOA_O8MTCNjqIb_rqU2I"}`,
	} {
		f.Add(false, []byte(s))
	}
	f.Add(true, append(frame.AppendClientHeader(nil, frame.BinDirect, 1, 2, "bob"), "x"...))
	f.Add(true, append(frame.AppendClientHeader(nil, frame.BinPublish, 0, 0, "r"), "y"...))
	f.Add(true, frame.AppendClientHeader(nil, frame.BinBroadcast, 0, 0, ""))
	f.Add(true, []byte{1})
	f.Fuzz(func(t *testing.T, bin bool, msg []byte) {
		r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 4, MaxRoomPeers: 4, AllowBroadcast: true}})
		a, b := r.connect("alice"), r.connect("bob")
		a.send(`{"type":"join","room":"r"}`)
		b.send(`{"type":"join","room":"r"}`)
		a.all()
		b.all()
		op := byte(frame.OpText)
		if bin {
			op = frame.OpBinary
		}
		a.sendOp(op, msg)
		if !a.open {
			t.Fatal("session stopped reading")
		}
		for _, p := range []*peer{a, b} {
			for _, fr := range p.all() {
				switch fr.op {
				case frame.OpText:
					var m struct{ Type string }
					if err := json.Unmarshal(fr.payload, &m); err != nil || m.Type == "" {
						t.Fatalf("%s got %q", p.id, fr.payload)
					}
				case frame.OpBinary:
					var h frame.Header
					if _, err := frame.ParseServerHeader(fr.payload, &h); err != nil || string(h.From) != "alice" {
						t.Fatalf("%s got binary % x: %v", p.id, fr.payload, err)
					}
				default:
					t.Fatalf("%s got opcode %d", p.id, fr.op)
				}
			}
		}
	})
}
