package session_test

import (
	"encoding/binary"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// The vocabulary is part of the wire and metrics contract (docs/protocol.md
// sections 3 and 6): names and messages are spelled out here on purpose.
func TestVocabulary(t *testing.T) {
	want := []struct{ name, text string }{
		{"bad_json", "message is not a JSON object with a string type"},
		{"unknown_type", "unknown message type"},
		{"bad_request", "missing or invalid field"},
		{"bad_frame", "invalid binary header"},
		{"peer_not_found", "no such peer"},
		{"not_member", "not a member of this room"},
		{"forbidden", "broadcast is disabled on this relay"},
		{"rate_limited", "rate limit exceeded, messages dropped"},
		{"too_many_rooms", "too many rooms joined"},
		{"room_full", "room is full"},
		{"type_not_allowed", "binary content type not allowed or too large"},
	}
	for i, w := range want {
		c := session.Code(i)
		if c.String() != w.name || c.Text() != w.text {
			t.Errorf("code %d: %q %q, want %q %q", i, c.String(), c.Text(), w.name, w.text)
		}
	}
}

func TestWelcome(t *testing.T) {
	r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}})
	a := r.open("alice", false)
	a.none() // Open does no I/O
	if r.rt.Lookup("alice") != nil {
		t.Fatal("registered before Greet")
	}
	a.sess.Greet(nil)
	match(t, "alice", a.next(), msg{
		"type": "welcome", "peer": "alice", "server": "wsrelay/test", "heartbeat_ms": 25000.0,
		"timeout_ms": 60000.0, "max_message_bytes": 65536.0, "queue_size": 16.0,
	})
	if r.rt.Lookup("alice") == nil {
		t.Fatal("not registered after Greet")
	}
}

// A client may send its first message as soon as it sees the handshake
// response, before the welcome: the peer must be registered by then, or a
// join would be acknowledged for a peer the router does not know.
func TestGreetRegistersBeforeHello(t *testing.T) {
	r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}})
	a := r.open("alice", false)
	hello := []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")
	var writes [][]byte
	registered := false
	a.sock.onWrite = func(b []byte) {
		if len(writes) == 0 {
			registered = r.rt.Lookup("alice") != nil
		}
		writes = append(writes, append([]byte(nil), b...))
	}
	a.sess.Greet(hello)
	if len(writes) == 0 || !strings.HasPrefix(string(writes[0]), string(hello)) {
		t.Fatalf("first write %q, want it to begin with the handshake response", writes)
	}
	if !registered {
		t.Fatal("handshake response written before the peer was registered")
	}
	a.sock.mu.Lock()
	a.sock.out = a.sock.out[len(hello):]
	a.sock.onWrite = nil
	a.sock.mu.Unlock()
	match(t, "alice", a.next(), msg{
		"type": "welcome", "peer": "alice", "server": "wsrelay/test", "heartbeat_ms": 25000.0,
		"timeout_ms": 60000.0, "max_message_bytes": 65536.0, "queue_size": 16.0,
	})
}

func TestOnCloseLeavesRooms(t *testing.T) {
	r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}})
	a, b := r.connect("alice"), r.connect("bob")
	a.send(`{"type":"join","room":"r"}`)
	b.send(`{"type":"join","room":"r"}`)
	a.all()
	b.all()
	a.close()
	match(t, "bob", b.next(), msg{"type": "peer_left", "room": "r", "peer": "alice"})
	if r.rt.Lookup("alice") != nil {
		t.Fatal("alice still registered")
	}
	b.send(`{"type":"direct","to":"alice","data":1}`)
	match(t, "bob", b.next(), errMsg(session.CodePeerNotFound, nil))
}

func TestEcho(t *testing.T) {
	r := newRig(t, rigOptions{})
	e := r.open("", true)
	e.sess.Greet(nil)
	e.none() // no welcome on /echo
	for _, tc := range []struct {
		op  byte
		msg string
	}{{frame.OpText, `not even JSON`}, {frame.OpBinary, "\x00\x01"}, {frame.OpText, ""}} {
		e.sendOp(tc.op, []byte(tc.msg))
		fs := e.all()
		if len(fs) != 1 || fs[0].op != tc.op || string(fs[0].payload) != tc.msg {
			t.Fatalf("echo of %d %q: %s", tc.op, tc.msg, dump(fs))
		}
	}
	checkErrors(t, r, noError)
	if r.rt.Peers() != 0 {
		t.Fatal("an echo connection was registered")
	}
}

func TestRateLimited(t *testing.T) {
	r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}, rateMsgs: 1, rateBurst: 1})
	a := r.connect("alice")
	a.send(`{"type":"ping"}`)
	match(t, "alice", a.next(), msg{"type": "pong"})
	a.send(`{"type":"ping"}`)
	match(t, "alice", a.next(), errMsg(session.CodeRateLimited, nil))
	a.send(`{"type":"ping"}`) // told at most once a second
	a.none()
	if got := r.st.DroppedBy(stats.DropRateLimited); got != 2 {
		t.Fatalf("%d dropped as rate_limited, want 2", got)
	}
	checkErrors(t, r, session.CodeRateLimited)
	if !a.open {
		t.Fatal("closed before 10 s of abuse")
	}
}

// A peer that keeps exceeding its rate for 10 s is closed with 1008, and
// the transport is told to stop reading it.
func TestRateAbuseCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, rigOptions{router: router.Options{MaxRoomsPerPeer: 10, MaxRoomPeers: 10}, rateMsgs: 1, rateBurst: 1})
		a := r.connect("alice")
		start := time.Now()
		for a.open && time.Since(start) < 15*time.Second {
			a.send(`{"type":"ping"}`)
			time.Sleep(100 * time.Millisecond)
		}
		if a.open {
			t.Fatal("still open after 15 s of abuse")
		}
		if d := time.Since(start); d < 10*time.Second || d > 11*time.Second {
			t.Fatalf("closed after %v, want 10 s", d)
		}
		fs := a.all()
		last := fs[len(fs)-1]
		if last.op != frame.OpClose || binary.BigEndian.Uint16(last.payload) != 1008 {
			t.Fatalf("last frame %s, want close 1008", dump(fs[len(fs)-1:]))
		}
		if got := r.st.EvictedBy(stats.EvictPolicy); got != 1 {
			t.Fatalf("%d policy evictions, want 1", got)
		}
		time.Sleep(2 * time.Second) // the close linger
		synctest.Wait()
		a.sock.mu.Lock()
		closed := a.sock.closed
		a.sock.mu.Unlock()
		if !closed {
			t.Fatal("socket not closed")
		}
	})
}
