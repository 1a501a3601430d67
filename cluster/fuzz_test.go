package cluster

import (
	"encoding/binary"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// sink is a conn.Socket that takes everything and reports it written.
type sink struct{ c *conn.Conn }

func (s *sink) Write(b []byte) (int, error) { s.c.Written(len(b)); return len(b), nil }
func (s *sink) Close() error                { return nil }

// FuzzHandle feeds two messages from NATS, as another node or anything
// else publishing under the prefix could send them, to a node with a local
// peer "bob" in room "r". No input may panic; a message is counted as
// cluster_malformed at most once, and a frame or snapshot request exactly
// when an independent check of its layout says it is malformed; and the
// view stays consistent: every peer it lists is on a node it knows, every
// room member lists the room, and no room is empty.
func FuzzHandle(f *testing.F) {
	hdr := func(node string, inc, seq uint64) []byte { return appendPresenceHeader(nil, node, inc, seq) }
	up := appendRecUp(hdr("n2", 1, 1), "alice", 5)
	join := appendRecRoom(hdr("n2", 1, 2), recJoin, "alice", "r")
	snap := binary.BigEndian.AppendUint64(append(hdr("n2", 1, 3), recSnapStart), 1)
	snap = append(snap, 1)
	snap = appendRecRoom(appendRecUp(snap, "carol", 9), recJoin, "carol", "r")
	snap = binary.BigEndian.AppendUint64(append(snap, recSnapEnd), 1)
	seeds := [][2][]byte{
		{append([]byte{kindDirect, 1, 3, 'b', 'o', 'b'}, `{"type":"direct"}`...), nil},
		{append([]byte{kindRoom, 2, 1, 'r'}, 1, 0, 0, 0, 0, 0, 'x'), append([]byte{kindBroadcast, 1}, "{}"...)},
		{appendField([]byte{kindSyncReq}, "n2"), nil},
		{up, join},
		{snap, appendRecRoom(hdr("n2", 1, 4), recLeave, "carol", "r")},
		{appendRecUp(hdr("n2", 1, 1), "bob", 1<<62), append(hdr("n2", 1, 2), recBye)},
		{append(hdr("n2", 1, 7), recHeartbeat), appendField(append(hdr("n2", 2, 1), recDown), "alice")},
		{append(hdr("me", 1, 1), recHeartbeat), []byte{kindPresence}},
		{up, appendRecRoom(binary.BigEndian.AppendUint64(appendField(append(hdr("n3", 1, 1), recMovedUp), "alice"), 9), recMovedJoin, "alice", "r")},
		{appendRecRoom(hdr("n2", 1, 1), recMovedLeave, "bob", "r"), appendField(append(hdr("n2", 1, 2), recMovedDown), "bob")},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	// One Cluster, its state made new for every input (New allocates the
	// 65536-message inbound queue, which would dominate each run).
	// The counters are shared too: the checks read their deltas.
	st := stats.New(metrics.NewSet(), 10)
	c, err := New(Config{URL: "nats://127.0.0.1:1", NodeID: "me", Prefix: "fz"}, router.New(router.Options{}, st), st, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		rt := router.New(router.Options{MaxRoomsPerPeer: 4}, st)
		c.rt, c.st = rt, st
		c.view = newView(c.subj, c.cfg.Heartbeat)
		c.local = make(map[string]*localPeer)
		c.moving = make(map[string]bool)
		c.moved = make(map[string]forwarding)
		c.movedAny.Store(0)
		c.out = outbox{}
		rt.SetBackplane(c) // PeerUp and Joined record presence in the outbox, nothing is sent
		env := conn.NewEnv(16, st, nil)
		s := &sink{}
		bob := conn.New(env, "bob", "127.0.0.1", s)
		s.c = bob
		rt.Register(bob)
		var bt router.Batch
		if err := rt.Join(bob, "r", &bt); err != nil {
			t.Fatal(err)
		}
		bt.Flush()

		for _, msg := range [][]byte{first, second} {
			before := st.DroppedBy(stats.DropClusterMalformed)
			c.handle(msg, &bt)
			bt.Flush()
			n := st.DroppedBy(stats.DropClusterMalformed) - before
			if n > 1 {
				t.Fatalf("one message counted %d times as malformed", n)
			}
			if want, known := malformedLayout(msg); known && (n == 1) != want {
				t.Fatalf("%q: counted malformed %v, layout check says %v", msg, n == 1, want)
			}
			checkView(t, c.view)
		}
		bob.Teardown()
	})
}

// malformedLayout is an independent check of the frame and snapshot
// request layouts (wire.go): known is false for presence messages, whose
// records the view checks as it applies them.
func malformedLayout(m []byte) (malformed, known bool) {
	if len(m) < 2 {
		return true, true
	}
	switch m[0] {
	case kindDirect, kindRoom:
		return !(m[1] == 1 || m[1] == 2) || len(m) < 3 || len(m) < 3+int(m[2]), true
	case kindBroadcast:
		return !(m[1] == 1 || m[1] == 2), true
	case kindSyncReq:
		return len(m) != 2+int(m[1]), true
	case kindClose:
		n := 2 + int(m[1]) // kind, peer
		if len(m) < n+3 {
			return true, true
		}
		code := int(binary.BigEndian.Uint16(m[n:]))
		return len(m) != n+3+int(m[n+2]) || !frame.ValidCloseCode(code), true
	case kindPresence:
		return false, false
	}
	return true, true
}

// checkView fails t when the view contradicts itself.
func checkView(t *testing.T, v *view) {
	t.Helper()
	v.mu.RLock()
	defer v.mu.RUnlock()
	for id, p := range v.dir {
		if p.id != id || v.nodes[p.node.id] != p.node || p.node.peers[id] != p {
			t.Fatalf("peer %q in the directory is not on a known node", id)
		}
	}
	for id, n := range v.nodes {
		if n.id != id {
			t.Fatalf("node %q listed as %q", n.id, id)
		}
		for pid, p := range n.peers {
			if v.dir[pid] != p {
				t.Fatalf("peer %q of node %q is not in the directory", pid, id)
			}
			for room := range p.rooms {
				rr := v.rooms[room]
				if rr == nil {
					t.Fatalf("peer %q is in room %q, which the view lacks", pid, room)
				}
				if _, ok := rr.members[p]; !ok {
					t.Fatalf("room %q does not list its member %q", room, pid)
				}
			}
		}
	}
	for name, rr := range v.rooms {
		if len(rr.members) == 0 {
			t.Fatalf("room %q is empty", name)
		}
		for p := range rr.members {
			if _, ok := p.rooms[name]; !ok {
				t.Fatalf("member %q of room %q does not list it", p.id, name)
			}
			if v.dir[p.id] != p {
				t.Fatalf("member %q of room %q is not in the directory", p.id, name)
			}
		}
	}
}
