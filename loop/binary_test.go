package loop_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestBinaryFrames(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_ALLOW_BROADCAST=true")
	a, b, c := ts.Dial("a"), ts.Dial("b"), ts.Dial("c")
	relaytest.Join(t, a, "doc/1")
	relaytest.Join(t, b, "doc/1")
	relaytest.Recv(t, a, "peer_joined")
	payload := []byte{0, 1, 2, 0xff, 0xfe, '{', 0}

	if err := a.SendBinary(frame.BinDirect, 7, 0xA5, "c", payload); err != nil {
		t.Fatal(err)
	}
	m := relaytest.Recv(t, c, "binary")
	if bn := m.Binary; bn.Op != frame.BinDirect || bn.CType != 7 || bn.Flags != 0xA5 || bn.From != "a" || bn.To != "" || !bytes.Equal(bn.Payload, payload) {
		t.Fatalf("direct binary = %+v", bn)
	}

	if err := a.SendBinary(frame.BinPublish, 1, 2, "doc/1", payload); err != nil {
		t.Fatal(err)
	}
	m = relaytest.Recv(t, b, "binary")
	if bn := m.Binary; bn.Op != frame.BinPublish || bn.CType != 1 || bn.Flags != 2 || bn.From != "a" || bn.To != "doc/1" || !bytes.Equal(bn.Payload, payload) {
		t.Fatalf("publish binary = %+v", bn)
	}
	relaytest.Quiet(t, c, 50*time.Millisecond)

	if err := a.SendBinary(frame.BinBroadcast, 0, 0, "", nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, b, "binary"); m.Binary.Op != frame.BinBroadcast || len(m.Binary.Payload) != 0 {
		t.Fatalf("broadcast binary = %+v", m.Binary)
	}
	relaytest.Recv(t, c, "binary")

	// Errors: routed like JSON.
	if err := c.SendBinary(frame.BinPublish, 1, 0, "doc/1", payload); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "error"); m.Code != "not_member" {
		t.Fatalf("binary publish by non-member = %s", m.Raw)
	}
	if err := a.SendBinary(frame.BinDirect, 1, 0, "ghost", payload); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, a, "error"); m.Code != "peer_not_found" {
		t.Fatalf("binary direct to ghost = %s", m.Raw)
	}
}

func TestBadBinaryHeaders(t *testing.T) {
	ts := relaytest.Start(t)
	a := ts.Dial("a")
	cases := map[string][]byte{
		"empty":         {},
		"short":         {1, 1, 0},
		"version 2":     {2, 1, 0, 0, 0, 1, 'b'},
		"op 0":          {1, 0, 0, 0, 0, 0},
		"op 4":          {1, 4, 0, 0, 0, 0},
		"from not 0":    {1, 1, 0, 0, 1, 'x', 1, 'b'},
		"to too long":   {1, 1, 0, 0, 0, 9, 'b'},
		"bad peer":      {1, 1, 0, 0, 0, 3, 'a', ' ', 'b'},
		"bad room":      {1, 2, 0, 0, 0, 2, 'a', '#'},
		"broadcast to":  {1, 3, 0, 0, 0, 1, 'a'},
		"direct no to":  {1, 1, 0, 0, 0, 0},
		"publish no to": {1, 2, 0, 0, 0, 0, 'x'},
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			if err := a.SendRaw(2, msg); err != nil {
				t.Fatal(err)
			}
			if m := relaytest.Recv(t, a, "error"); m.Code != "bad_frame" {
				t.Fatalf("got %s", m.Raw)
			}
		})
	}
	if err := a.Ping(nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "pong")
}

func TestBinaryTypesAllowlist(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_BINARY_TYPES=1:16,2:1000")
	a, b := ts.Dial("a"), ts.Dial("b")
	send := func(ctype byte, n int) {
		t.Helper()
		if err := a.SendBinary(frame.BinDirect, ctype, 0, "b", make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	send(1, 16) // exactly the limit
	if m := relaytest.Recv(t, b, "binary"); m.Binary.CType != 1 || len(m.Binary.Payload) != 16 {
		t.Fatalf("allowed frame = %+v", m.Binary)
	}
	send(1, 17) // over the type's limit
	if m := relaytest.Recv(t, a, "error"); m.Code != "type_not_allowed" {
		t.Fatalf("oversized type = %s", m.Raw)
	}
	send(0, 1) // ctype 0 not listed
	if m := relaytest.Recv(t, a, "error"); m.Code != "type_not_allowed" {
		t.Fatalf("ctype 0 = %s", m.Raw)
	}
	send(3, 1) // not listed
	if m := relaytest.Recv(t, a, "error"); m.Code != "type_not_allowed" {
		t.Fatalf("ctype 3 = %s", m.Raw)
	}
	send(2, 1000)
	relaytest.Recv(t, b, "binary")
	relaytest.Quiet(t, b, 50*time.Millisecond)
}
