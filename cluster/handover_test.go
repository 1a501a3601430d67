package cluster

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// recorder is a conn.Socket that keeps what is written to it.
type recorder struct {
	c  *conn.Conn
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.b.Write(b)
	r.mu.Unlock()
	r.c.Written(len(b))
	return len(b), nil
}
func (r *recorder) Close() error { return nil }

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// offlineNode is a Cluster that is never started, with a router and a local
// peer bob in room r whose socket records what he gets.
func offlineNode(t *testing.T) (*Cluster, *recorder) {
	t.Helper()
	st := stats.New(metrics.NewSet(), 10)
	rt := router.New(router.Options{MaxRoomsPerPeer: 4}, st)
	c, err := New(Config{URL: "nats://127.0.0.1:1", NodeID: "me", Prefix: "mv"}, rt, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt.SetBackplane(c)
	rec := &recorder{}
	bob := conn.New(conn.NewEnv(16, st, nil), "bob", "127.0.0.1", rec)
	rec.c = bob
	rt.Register(bob)
	var bt router.Batch
	if err := rt.Join(bob, "r", &bt); err != nil {
		t.Fatal(err)
	}
	bt.Flush()
	t.Cleanup(bob.Teardown)
	return c, rec
}

// The moved records of a session handover change the view like their
// upper-case twins, and tell no local member anything.
func TestMovedRecordsAreQuiet(t *testing.T) {
	c, bob := offlineNode(t)
	var bt router.Batch
	seq := map[string]uint64{}
	send := func(node string, recs ...[]byte) {
		t.Helper()
		seq[node]++
		m := appendPresenceHeader(nil, node, 1, seq[node])
		for _, r := range recs {
			m = append(m, r...)
		}
		c.handle(m, &bt)
		bt.Flush()
	}
	up := func(rec byte, peer string, ts int64) []byte {
		b := appendField([]byte{rec}, peer)
		return binary.BigEndian.AppendUint64(b, uint64(ts))
	}
	room := func(rec byte, peer string) []byte { return appendRecRoom(nil, rec, peer, "r") }

	send("n2", up(recUp, "alice", 1), room(recJoin, "alice"))
	if got := strings.Count(bob.String(), `"peer_joined"`); got != 1 {
		t.Fatalf("bob got %d peer_joined for alice's join, want 1", got)
	}
	// alice's session moves to n3; n3's records may come first.
	send("n3", up(recMovedUp, "alice", 2), room(recMovedJoin, "alice"))
	if node := c.PeerNode("alice"); node != "n3" {
		t.Fatalf("alice on %q, want n3", node)
	}
	send("n2", room(recMovedLeave, "alice"), appendField([]byte{recMovedDown}, "alice"))
	if node := c.PeerNode("alice"); node != "n3" || c.RemoteMembers("r") != 1 {
		t.Fatalf("after n2's late records: alice on %q, %d remote members; want n3, 1", node, c.RemoteMembers("r"))
	}
	// And back to n2, its records first this time.
	send("n3", room(recMovedLeave, "alice"), appendField([]byte{recMovedDown}, "alice"))
	if node := c.PeerNode("alice"); node != "" {
		t.Fatalf("alice still on %q", node)
	}
	send("n2", up(recMovedUp, "alice", 3), room(recMovedJoin, "alice"))
	if node := c.PeerNode("alice"); node != "n2" || c.RemoteMembers("r") != 1 {
		t.Fatalf("alice on %q, %d remote members; want n2, 1", node, c.RemoteMembers("r"))
	}
	if out := bob.String(); strings.Count(out, `"peer_joined"`) != 1 || strings.Contains(out, `"peer_left"`) {
		t.Fatalf("the moves were told to bob:\n%s", out)
	}
	checkView(t, c.view)
	// An ordinary leave is told again.
	send("n2", appendField([]byte{recDown}, "alice"))
	if !strings.Contains(bob.String(), `"peer_left"`) {
		t.Fatal("alice's departure was not told")
	}
}

// Direct frames that reach the old node of a moved session go on to the
// new one, for DeadAfter, unless the peer is connected here again.
func TestMovedDirectsForwarded(t *testing.T) {
	c, _ := offlineNode(t)
	direct := append([]byte{kindDirect, frame.OpText}, appendField(nil, "alice")...)
	direct = append(direct, `{"type":"direct","from":"bob","data":1}`...)
	var bt router.Batch
	c.handle(direct, &bt)
	if got := c.st.DroppedBy(stats.DropNoRoute); got != 1 {
		t.Fatalf("no_route %d before the move, want 1", got)
	}
	c.forward("alice", "mv.node.n2")
	c.handle(direct, &bt)
	c.localMu.Lock()
	ops := append([]outOp(nil), c.out.ops...)
	buf := append([]byte(nil), c.out.buf...)
	c.localMu.Unlock()
	var fwd []outOp
	for _, op := range ops {
		if op.kind == opForward && op.subject == "mv.node.n2" {
			fwd = append(fwd, op)
		}
	}
	if len(fwd) != 1 || !bytes.Equal(buf[fwd[0].start:fwd[0].end], direct) {
		t.Fatalf("forwarded %d messages, want the direct frame once", len(fwd))
	}
	if got := c.st.DroppedBy(stats.DropNoRoute); got != 1 {
		t.Fatalf("no_route %d after the move, want still 1", got)
	}
	if inbox, ok := func() (string, bool) {
		c.localMu.Lock()
		defer c.localMu.Unlock()
		return c.forwardInbox("carol")
	}(); ok {
		t.Fatalf("carol forwarded to %q", inbox)
	}
}

// movedOf builds a Moved with text frames of the given bodies.
func movedOf(sent, dropped uint64, replay, queue []string) session.Moved {
	h := &conn.Handoff{Sent: sent, Dropped: dropped}
	for _, list := range []struct {
		bodies []string
		dst    *[]*frame.Buf
	}{{replay, &h.Replay}, {queue, &h.Queue}} {
		for _, s := range list.bodies {
			b := frame.NewBuf(len(s))
			b.B = append(b.B, s...)
			b.Finish(frame.OpText)
			*list.dst = append(*list.dst, b)
		}
	}
	return session.Moved{Peer: "alice", Handoff: h, Mark: sent - uint64(len(replay)) + 1}
}

func bodies(list []*frame.Buf) string {
	var out []string
	for _, b := range list {
		out = append(out, string(b.Body()))
	}
	return strings.Join(out, ",")
}

func TestHandoverReplyRoundTrip(t *testing.T) {
	m := movedOf(7, 1, []string{"m5", "m6", "m7"}, []string{"m8", ""})
	defer m.Handoff.Release()
	got, ok := decodeMoved(first(appendMoved(nil, m, 1<<20)))
	if !ok {
		t.Fatal("decode: malformed")
	}
	defer got.Handoff.Release()
	h := got.Handoff
	if got.Peer != "alice" || got.Mark != 5 || h.Sent != 7 || h.Dropped != 1 ||
		bodies(h.Replay) != "m5,m6,m7" || bodies(h.Queue) != "m8," {
		t.Fatalf("round trip: %+v %+v", got, h)
	}
	for i, b := range h.Replay {
		if !bytes.Equal(b.Bytes(), m.Handoff.Replay[i].Bytes()) {
			t.Fatalf("frame %d: %q, want the original bytes %q", i, b.Bytes(), m.Handoff.Replay[i].Bytes())
		}
	}
	if m, ok := decodeMoved([]byte{handoverNone}); !ok || m.Handoff != nil {
		t.Fatalf("no session: %+v ok %v", m, ok)
	}
}

// A reply over NATS's payload limit leaves out the oldest frames: the
// replayable ones first, then queued ones, which count as dropped.
func TestHandoverReplyLimit(t *testing.T) {
	m := movedOf(3, 0, []string{"r1xx", "r2xx", "r3xx"}, []string{"q1xx", "q2xx"})
	defer m.Handoff.Release()
	for _, tc := range []struct {
		limit         int
		replay, queue string
		dropped       uint64
	}{
		{20, "r1xx,r2xx,r3xx", "q1xx,q2xx", 0},
		{12, "r3xx", "q1xx,q2xx", 0},
		{4, "", "q2xx", 1},
		{0, "", "", 2},
	} {
		reply, lost := appendMoved(nil, m, tc.limit)
		if lost != int(tc.dropped) {
			t.Fatalf("limit %d: %d queued frames reported lost, want %d", tc.limit, lost, tc.dropped)
		}
		got, ok := decodeMoved(reply)
		if !ok {
			t.Fatalf("limit %d: malformed", tc.limit)
		}
		h := got.Handoff
		if bodies(h.Replay) != tc.replay || bodies(h.Queue) != tc.queue || h.Dropped != tc.dropped || h.Sent != 3 {
			t.Fatalf("limit %d: replay %q queue %q dropped %d sent %d", tc.limit, bodies(h.Replay), bodies(h.Queue), h.Dropped, h.Sent)
		}
		h.Release()
	}
}

// FuzzDecodeMoved: no reply, however malformed, may panic; a reply that
// decodes is exactly the encoding of what it decoded to.
func FuzzDecodeMoved(f *testing.F) {
	m := movedOf(9, 2, []string{"a", "bb"}, []string{"ccc"})
	f.Add(first(appendMoved(nil, m, 1<<20)))
	m.Handoff.Release()
	f.Add([]byte{handoverNone})
	f.Add([]byte{handoverOK, 1, 'p', 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeMoved(data)
		if got.Handoff == nil {
			return
		}
		defer got.Handoff.Release()
		if !ok {
			t.Fatal("a malformed reply gave a session")
		}
		if again, _ := appendMoved(nil, got, 1<<30); !bytes.Equal(again, data) {
			t.Fatalf("%q decodes to what encodes as %q", data, again)
		}
	})
}

// first returns a reply of appendMoved without its count of lost frames.
func first(b []byte, _ int) []byte { return b }
