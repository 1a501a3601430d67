package loop_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/internal/relaytest"
)

func TestRoomsAndPresence(t *testing.T) {
	ts := relaytest.Start(t)
	a, b, c := ts.Dial("a"), ts.Dial("b"), ts.Dial("c")
	if j := relaytest.Join(t, a, "lobby"); j.Room != "lobby" || len(j.Peers) != 0 {
		t.Fatalf("first joined = %s", j.Raw)
	}
	j := relaytest.Join(t, b, "lobby")
	if len(j.Peers) != 1 || j.Peers[0] != "a" {
		t.Fatalf("second joined.peers = %v", j.Peers)
	}
	if m := relaytest.Recv(t, a, "peer_joined"); m.Peer != "b" || m.Room != "lobby" {
		t.Fatalf("peer_joined = %s", m.Raw)
	}
	j = relaytest.Join(t, c, "lobby")
	if len(j.Peers) != 2 || !contains(j.Peers, "a") || !contains(j.Peers, "b") {
		t.Fatalf("third joined.peers = %v", j.Peers)
	}
	relaytest.Recv(t, a, "peer_joined")
	relaytest.Recv(t, b, "peer_joined")

	if err := c.Leave("lobby", nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "left"); m.Room != "lobby" {
		t.Fatalf("left = %s", m.Raw)
	}
	if m := relaytest.Recv(t, a, "peer_left"); m.Peer != "c" {
		t.Fatalf("peer_left = %s", m.Raw)
	}
	if m := relaytest.Recv(t, b, "peer_left"); m.Peer != "c" {
		t.Fatalf("peer_left = %s", m.Raw)
	}
	// Leaving a room one is not in.
	if err := c.Leave("lobby", 5); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "error"); m.Code != "not_member" || string(m.ID) != "5" {
		t.Fatalf("leave twice = %s", m.Raw)
	}
	if got := ts.Router.Rooms(); got != 1 {
		t.Fatalf("rooms = %d", got)
	}
}

func TestPublish(t *testing.T) {
	ts := relaytest.Start(t)
	a, b, c := ts.Dial("a"), ts.Dial("b"), ts.Dial("c")
	relaytest.Join(t, a, "r")
	relaytest.Join(t, b, "r")
	relaytest.Recv(t, a, "peer_joined")

	// data is relayed byte-for-byte: spacing, key order, escapes, numbers.
	data := `{ "z":1,"a" : [1.50, -0, "\u00e9\n"], "big": 123456789012345678901234567890 }`
	if err := a.SendText([]byte(`{"type":"publish","room":"r","from":"mallory","data":` + data + `,"id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, a, "ack"); string(m.ID) != `"p1"` {
		t.Fatalf("ack = %s", m.Raw)
	}
	m := relaytest.Recv(t, b, "publish")
	if m.From != "a" || m.Room != "r" || string(m.Data) != data {
		t.Fatalf("publish = %s", m.Raw)
	}
	// The sender does not get its own message; c is not a member.
	relaytest.Quiet(t, a, 100*time.Millisecond)
	relaytest.Quiet(t, c, 50*time.Millisecond)

	// A non-member cannot publish.
	if err := c.Publish("r", "x", 9); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "error"); m.Code != "not_member" || string(m.ID) != "9" {
		t.Fatalf("non-member publish = %s", m.Raw)
	}
	// Without id, no ack.
	if err := a.Publish("r", 1, nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, b, "publish")
	relaytest.Quiet(t, a, 100*time.Millisecond)
}

func TestDirect(t *testing.T) {
	ts := relaytest.Start(t)
	a, b := ts.Dial("a"), ts.Dial("b")
	sdp := json.RawMessage(`{"sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1","type":"offer"}`)
	if err := a.Direct("b", sdp, 1); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, b, "direct"); m.From != "a" || string(m.Data) != string(sdp) {
		t.Fatalf("direct = %s", m.Raw)
	}
	if m := relaytest.Recv(t, a, "ack"); string(m.ID) != "1" {
		t.Fatalf("ack = %s", m.Raw)
	}
	if err := a.Direct("nobody", 1, "x"); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, a, "error"); m.Code != "peer_not_found" || string(m.ID) != `"x"` {
		t.Fatalf("direct to nobody = %s", m.Raw)
	}
	// A string id may hold 64 bytes between its quotes.
	id := strings.Repeat("i", 64)
	if err := a.Direct("b", 2, id); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, b, "direct")
	if m := relaytest.Recv(t, a, "ack"); string(m.ID) != `"`+id+`"` {
		t.Fatalf("ack of a 64-byte id = %s", m.Raw)
	}
	if err := a.Direct("b", 3, id+"i"); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, a, "error"); m.Code != "bad_request" || m.ID != nil {
		t.Fatalf("direct with a 65-byte id = %s", m.Raw)
	}
}

func TestBroadcast(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		ts := relaytest.Start(t)
		a, b := ts.Dial("a"), ts.Dial("b")
		if err := a.Broadcast("hi", 3); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, a, "error"); m.Code != "forbidden" || string(m.ID) != "3" {
			t.Fatalf("broadcast = %s", m.Raw)
		}
		relaytest.Quiet(t, b, 100*time.Millisecond)
	})
	t.Run("enabled", func(t *testing.T) {
		ts := relaytest.Start(t, "WSRELAY_ALLOW_BROADCAST=true")
		a, b, c := ts.Dial("a"), ts.Dial("b"), ts.Dial("c")
		if err := a.Broadcast([]int{1, 2}, 3); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, b, "broadcast"); m.From != "a" || string(m.Data) != "[1,2]" {
			t.Fatalf("broadcast = %s", m.Raw)
		}
		relaytest.Recv(t, c, "broadcast")
		relaytest.Recv(t, a, "ack")
		relaytest.Quiet(t, a, 100*time.Millisecond)
	})
}

func TestPing(t *testing.T) {
	ts := relaytest.Start(t)
	a := ts.Dial("a")
	before := time.Now().UnixMilli()
	if err := a.Ping(nil); err != nil {
		t.Fatal(err)
	}
	m := relaytest.Recv(t, a, "pong")
	if m.Time < before-1000 || m.Time > time.Now().UnixMilli()+1000 {
		t.Fatalf("pong time %d, now %d", m.Time, before)
	}
}

func TestErrorsKeepConnectionUsable(t *testing.T) {
	ts := relaytest.Start(t)
	a := ts.Dial("a")
	cases := []struct {
		name, raw, code, id string
	}{
		{"not json", `hello`, "bad_json", ""},
		{"array", `[1,2]`, "bad_json", ""},
		{"no type", `{"room":"r"}`, "bad_json", ""},
		{"type not string", `{"type":5}`, "bad_json", ""},
		{"truncated", `{"type":"join","room":"r"`, "bad_json", ""},
		{"bad data", `{"type":"publish","room":"r","data":{nope}}`, "bad_json", ""},
		{"unknown type", `{"type":"dance","id":7}`, "unknown_type", "7"},
		{"join without room", `{"type":"join","id":"j"}`, "bad_request", `"j"`},
		{"bad room name", `{"type":"join","room":"a b"}`, "bad_request", ""},
		{"room too long", `{"type":"join","room":"` + string(make129()) + `"}`, "bad_request", ""},
		{"direct bad to", `{"type":"direct","to":"a b","data":1}`, "bad_request", ""},
		{"direct no data", `{"type":"direct","to":"b"}`, "bad_request", ""},
		{"publish no room", `{"type":"publish","data":1}`, "bad_request", ""},
		{"id object", `{"type":"ping","id":{"x":1}}`, "bad_request", ""},
		{"id too long", `{"type":"ping","id":"` + string(make129()[:70]) + `"}`, "bad_request", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.SendText([]byte(tc.raw)); err != nil {
				t.Fatal(err)
			}
			m := relaytest.Recv(t, a, "error")
			if m.Code != tc.code || string(m.ID) != tc.id || m.Message == "" {
				t.Fatalf("got %s, want code %s id %q", m.Raw, tc.code, tc.id)
			}
		})
	}
	// Still usable.
	if err := a.Ping(nil); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "pong")
	_, _, body := ts.Get("/metrics")
	mustContain(t, body, `wsrelay_errors_total{code="bad_json"} 6`, `wsrelay_errors_total{code="bad_request"} 8`)
}

func make129() []byte {
	b := make([]byte, 129)
	for i := range b {
		b[i] = 'x'
	}
	return b
}
