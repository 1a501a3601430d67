package session_test

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// msg is a partial expectation of a JSON message: every key given must be
// present with that value (numbers as float64, as encoding/json decodes).
type msg map[string]any

func match(t *testing.T, who string, got map[string]any, want msg) {
	t.Helper()
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Fatalf("%s got %v, want %s=%v", who, got, k, v)
		}
	}
}

func errMsg(code session.Code, id any) msg {
	m := msg{"type": "error", "code": code.String(), "message": code.Text()}
	if id != nil {
		m["id"] = id
	}
	return m
}

const noError = session.Code(255)

func TestText(t *testing.T) {
	joinBoth := func(a, b *peer) {
		a.send(`{"type":"join","room":"r"}`)
		b.send(`{"type":"join","room":"r"}`)
		a.all()
		b.all()
	}
	cases := []struct {
		name   string
		opts   rigOptions
		setup  func(a, b *peer)
		send   string
		sender msg // nil: nothing for the sender
		other  msg // nil: nothing for bob
		code   session.Code
		kind   stats.Kind
	}{
		{name: "ping", send: `{"type":"ping"}`, sender: msg{"type": "pong"},
			code: noError, kind: stats.KindControl},
		{name: "direct with id", send: `{"type":"direct","to":"bob","data":{"x":1},"id":7}`,
			sender: msg{"type": "ack", "id": 7.0},
			other:  msg{"type": "direct", "from": "alice", "data": map[string]any{"x": 1.0}},
			code:   noError, kind: stats.KindDirect},
		{name: "direct with string id", send: `{"type":"direct","to":"bob","data":"hi","id":"q1"}`,
			sender: msg{"type": "ack", "id": "q1"}, other: msg{"type": "direct", "from": "alice", "data": "hi"},
			code: noError, kind: stats.KindDirect},
		{name: "direct without id", send: `{"type":"direct","to":"bob","data":null}`,
			other: msg{"type": "direct", "from": "alice", "data": nil}, code: noError, kind: stats.KindDirect},
		{name: "direct to nobody", send: `{"type":"direct","to":"carol","data":1,"id":7}`,
			sender: errMsg(session.CodePeerNotFound, 7.0), code: session.CodePeerNotFound, kind: stats.KindDirect},
		{name: "direct without to", send: `{"type":"direct","data":1,"id":7}`,
			sender: errMsg(session.CodeBadRequest, 7.0), code: session.CodeBadRequest, kind: stats.KindDirect},
		{name: "direct without data", send: `{"type":"direct","to":"bob"}`,
			sender: errMsg(session.CodeBadRequest, nil), code: session.CodeBadRequest, kind: stats.KindDirect},
		{name: "join", send: `{"type":"join","room":"r"}`,
			sender: msg{"type": "joined", "room": "r", "peers": []any{}}, code: noError, kind: stats.KindControl},
		{name: "join a member", setup: func(_, b *peer) { b.send(`{"type":"join","room":"r"}`); b.all() },
			send:   `{"type":"join","room":"r"}`,
			sender: msg{"type": "joined", "room": "r", "peers": []any{"bob"}},
			other:  msg{"type": "peer_joined", "room": "r", "peer": "alice"}, code: noError, kind: stats.KindControl},
		{name: "join invalid room", send: `{"type":"join","room":""}`,
			sender: errMsg(session.CodeBadRequest, nil), code: session.CodeBadRequest, kind: stats.KindControl},
		{name: "too many rooms", opts: rigOptions{router: router.Options{MaxRoomsPerPeer: 1, MaxRoomPeers: 10}},
			setup: func(a, _ *peer) { a.send(`{"type":"join","room":"r1"}`); a.all() },
			send:  `{"type":"join","room":"r2","id":1}`, sender: errMsg(session.CodeTooManyRooms, 1.0),
			code: session.CodeTooManyRooms, kind: stats.KindControl},
		{name: "room full", opts: rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 1}},
			setup: func(_, b *peer) { b.send(`{"type":"join","room":"r"}`); b.all() },
			send:  `{"type":"join","room":"r"}`, sender: errMsg(session.CodeRoomFull, nil),
			code: session.CodeRoomFull, kind: stats.KindControl},
		{name: "leave", setup: func(a, _ *peer) { a.send(`{"type":"join","room":"r"}`); a.all() },
			send: `{"type":"leave","room":"r"}`, sender: msg{"type": "left", "room": "r"},
			code: noError, kind: stats.KindControl},
		{name: "leave tells the members", setup: joinBoth, send: `{"type":"leave","room":"r"}`,
			sender: msg{"type": "left", "room": "r"}, other: msg{"type": "peer_left", "room": "r", "peer": "alice"},
			code: noError, kind: stats.KindControl},
		{name: "leave not a member", send: `{"type":"leave","room":"r","id":2}`,
			sender: errMsg(session.CodeNotMember, 2.0), code: session.CodeNotMember, kind: stats.KindControl},
		{name: "leave invalid room", send: `{"type":"leave"}`,
			sender: errMsg(session.CodeBadRequest, nil), code: session.CodeBadRequest, kind: stats.KindControl},
		{name: "publish", setup: joinBoth, send: `{"type":"publish","room":"r","data":[1],"id":3}`,
			sender: msg{"type": "ack", "id": 3.0},
			other:  msg{"type": "publish", "room": "r", "from": "alice", "data": []any{1.0}},
			code:   noError, kind: stats.KindPublish},
		{name: "publish not a member", setup: func(_, b *peer) { b.send(`{"type":"join","room":"r"}`); b.all() },
			send: `{"type":"publish","room":"r","data":1}`, sender: errMsg(session.CodeNotMember, nil),
			code: session.CodeNotMember, kind: stats.KindPublish},
		{name: "publish without data", setup: joinBoth, send: `{"type":"publish","room":"r"}`,
			sender: errMsg(session.CodeBadRequest, nil), code: session.CodeBadRequest, kind: stats.KindPublish},
		{name: "broadcast disabled", send: `{"type":"broadcast","data":1,"id":4}`,
			sender: errMsg(session.CodeForbidden, 4.0), code: session.CodeForbidden, kind: stats.KindBroadcast},
		{name: "broadcast", opts: rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10, AllowBroadcast: true}},
			send: `{"type":"broadcast","data":"all"}`, other: msg{"type": "broadcast", "from": "alice", "data": "all"},
			code: noError, kind: stats.KindBroadcast},
		{name: "broadcast without data", opts: rigOptions{router: router.Options{AllowBroadcast: true}},
			send: `{"type":"broadcast"}`, sender: errMsg(session.CodeBadRequest, nil),
			code: session.CodeBadRequest, kind: stats.KindBroadcast},
		{name: "not JSON", send: `hello`, sender: errMsg(session.CodeBadJSON, nil),
			code: session.CodeBadJSON, kind: stats.KindControl},
		{name: "type not a string", send: `{"type":1}`, sender: errMsg(session.CodeBadJSON, nil),
			code: session.CodeBadJSON, kind: stats.KindControl},
		{name: "unknown type", send: `{"type":"shout","id":5}`, sender: errMsg(session.CodeUnknownType, 5.0),
			code: session.CodeUnknownType, kind: stats.KindControl},
		{name: "invalid id", send: `{"type":"ping","id":[1]}`, sender: errMsg(session.CodeBadRequest, nil),
			code: session.CodeBadRequest, kind: stats.KindControl},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.router == (router.Options{}) {
				tc.opts.router = router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}
			}
			r := newRig(t, tc.opts)
			a, b := r.connect("alice"), r.connect("bob")
			if tc.setup != nil {
				tc.setup(a, b)
			}
			before, kindBefore := r.st.Snapshot().MessagesIn, received(t, r, tc.kind)
			a.send(tc.send)
			if tc.sender == nil {
				a.none()
			} else {
				match(t, "alice", a.next(), tc.sender)
			}
			if tc.other == nil {
				b.none()
			} else {
				match(t, "bob", b.next(), tc.other)
			}
			checkErrors(t, r, tc.code)
			if got := r.st.Snapshot().MessagesIn - before; got != 1 {
				t.Errorf("%d messages counted, want 1", got)
			}
			if got := received(t, r, tc.kind) - kindBefore; got != 1 {
				t.Errorf("%d messages counted as %s, want 1", got, tc.kind)
			}
			if !a.open {
				t.Error("OnMessage asked to stop reading")
			}
		})
	}
}

// checkErrors asserts that exactly one error was counted, of code, or none
// for noError, on the Handler and on wsrelay_errors_total.
func checkErrors(t *testing.T, r *rig, code session.Code) {
	t.Helper()
	var out bytes.Buffer
	r.set.WritePrometheus(&out)
	for c := range session.Code(11) {
		want := uint64(0)
		if c == code {
			want = 1
		}
		if got := r.h.Errors(c); got != want {
			t.Errorf("errors %s = %d, want %d", c, got, want)
		}
		line := fmt.Sprintf("wsrelay_errors_total{code=%q} %d\n", c.String(), want)
		if !strings.Contains(out.String(), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// received returns wsrelay_messages_received_total{kind} from /metrics.
func received(t *testing.T, r *rig, kind stats.Kind) int {
	t.Helper()
	var out bytes.Buffer
	r.set.WritePrometheus(&out)
	prefix := fmt.Sprintf("wsrelay_messages_received_total{kind=%q} ", kind.String())
	for line := range strings.Lines(out.String()) {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("no %s in /metrics", prefix)
	return 0
}
