package router_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSocket is a conn.Socket that keeps what it is given and reports it
// written at once, like a transport whose peer reads everything.
type fakeSocket struct {
	c       *conn.Conn
	discard bool // keep nothing (big rooms, benchmarks)

	mu     sync.Mutex
	data   []byte // not yet taken by frames
	writes int
	closes int
}

func (s *fakeSocket) Write(b []byte) (int, error) {
	s.mu.Lock()
	s.writes++
	if !s.discard {
		s.data = append(s.data, b...)
	}
	s.mu.Unlock()
	s.c.Written(len(b))
	return len(b), nil
}

func (s *fakeSocket) Close() error {
	s.mu.Lock()
	s.closes++
	s.mu.Unlock()
	return nil
}

func (s *fakeSocket) closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closes > 0
}

// take returns the bytes written since the last take.
func (s *fakeSocket) take() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.data
	s.data = nil
	return b
}

type wsFrame struct {
	op      byte
	payload []byte
}

// parseFrames splits a server-to-client byte stream into unmasked, final
// WebSocket frames (RFC 6455 section 5.2).
func parseFrames(t testing.TB, b []byte) []wsFrame {
	t.Helper()
	var out []wsFrame
	for len(b) > 0 {
		if len(b) < 2 || b[0]&0xF0 != 0x80 || b[1]&0x80 != 0 {
			t.Fatalf("bad frame header % x", b[:min(len(b), 2)])
		}
		n, rest := uint64(b[1]&0x7F), b[2:]
		switch n {
		case 126:
			n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
		case 127:
			n, rest = binary.BigEndian.Uint64(rest), rest[8:]
		}
		if uint64(len(rest)) < n {
			t.Fatalf("frame of %d payload bytes, only %d follow", n, len(rest))
		}
		out = append(out, wsFrame{op: b[0] & 0x0F, payload: rest[:n]})
		b = rest[n:]
	}
	return out
}

// relay is a router with its stats, conn environment and peers.
type relay struct {
	t  testing.TB
	r  *router.Router
	st *stats.Stats
	e  *conn.Env
}

var defaultOpts = router.Options{MaxRoomsPerPeer: 64}

func newRelay(t testing.TB, opts router.Options) *relay {
	t.Helper()
	st := stats.New(metrics.NewSet(), 0)
	d := conn.NewDrainer(1)
	t.Cleanup(d.Stop)
	return &relay{t: t, r: router.New(opts, st), st: st, e: conn.NewEnv(16, st, d)}
}

type peer struct {
	*conn.Conn
	sock *fakeSocket
}

// newPeer returns an unregistered peer.
func (h *relay) newPeer(id string) *peer {
	s := &fakeSocket{}
	c := conn.New(h.e, id, "192.0.2.1", s)
	s.c = c
	return &peer{Conn: c, sock: s}
}

// connect registers a new peer.
func (h *relay) connect(id string) *peer {
	p := h.newPeer(id)
	h.r.Register(p.Conn)
	return p
}

// do runs one routing pass and flushes its batch, as the read loop does.
func (h *relay) do(f func(bt *router.Batch) error) error {
	var bt router.Batch
	err := f(&bt)
	bt.Flush()
	return err
}

func (h *relay) join(p *peer, room string) {
	h.t.Helper()
	if err := h.do(func(bt *router.Batch) error { return h.r.Join(p.Conn, room, bt) }); err != nil {
		h.t.Fatalf("%s joins %s: %v", p.ID, room, err)
	}
}

// received returns the JSON text frames p got since the last call.
func (p *peer) received(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, f := range parseFrames(t, p.sock.take()) {
		if f.op != frame.OpText {
			t.Fatalf("%s got opcode %d, want text", p.ID, f.op)
		}
		out = append(out, string(f.payload))
	}
	return out
}

// expect checks that p received exactly the JSON messages want, in order.
// The order of a joined reply's peers is not part of the contract.
func (p *peer) expect(t testing.TB, want ...string) {
	t.Helper()
	got := p.received(t)
	if len(got) != len(want) {
		t.Fatalf("%s received %d messages %q, want %d %q", p.ID, len(got), got, len(want), want)
	}
	for i := range got {
		if g, w := normJSON(t, got[i]), normJSON(t, want[i]); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s message %d:\n got %s\nwant %s", p.ID, i, got[i], want[i])
		}
	}
}

func normJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", s, err)
	}
	if m, ok := v.(map[string]any); ok {
		if ps, ok := m["peers"].([]any); ok {
			slices.SortFunc(ps, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		}
	}
	return v
}

// metric returns the value of the series name in st's Prometheus text.
func metric(t testing.TB, st *stats.Stats, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	st.Set.WritePrometheus(&buf)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}

func textBuf(body string) *frame.Buf {
	b := frame.NewBuf(len(body))
	b.B = append(b.B, body...)
	b.Finish(frame.OpText)
	return b
}

func TestRegisterLookup(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b := h.connect("a"), h.connect("b")
	if got := h.r.Lookup("a"); got != a.Conn {
		t.Fatalf("Lookup(a) = %v, want a", got)
	}
	if got := h.r.Lookup("b"); got != b.Conn {
		t.Fatalf("Lookup(b) = %v, want b", got)
	}
	if got := h.r.Lookup("c"); got != nil {
		t.Fatalf("Lookup(c) = %v, want nil", got)
	}
	if n := h.r.Peers(); n != 2 {
		t.Fatalf("Peers = %d, want 2", n)
	}
	seen := map[string]bool{}
	h.r.Each(func(c *conn.Conn) { seen[c.ID] = true })
	if len(seen) != 2 || !seen["a"] || !seen["b"] {
		t.Fatalf("Each visited %v, want a and b", seen)
	}
	h.do(func(bt *router.Batch) error { h.r.Remove(a.Conn, bt); return nil })
	if h.r.Lookup("a") != nil || h.r.Peers() != 1 {
		t.Fatalf("after Remove(a): Lookup(a) = %v, Peers = %d", h.r.Lookup("a"), h.r.Peers())
	}
}

func TestRegisterReplaces(t *testing.T) {
	h := newRelay(t, defaultOpts)
	old, b := h.connect("a"), h.connect("b")
	h.join(old, "r")
	h.join(old, "s")
	h.join(b, "r")
	old.received(t)
	b.received(t)

	repl := h.connect("a")

	fs := parseFrames(t, old.sock.take())
	if len(fs) != 1 || fs[0].op != frame.OpClose || len(fs[0].payload) < 2 {
		t.Fatalf("old connection got %v, want one close frame", fs)
	}
	if code := binary.BigEndian.Uint16(fs[0].payload); code != frame.CloseReplaced {
		t.Fatalf("old connection closed with %d, want %d", code, frame.CloseReplaced)
	}
	if !old.sock.closed() {
		t.Fatal("old socket not closed")
	}
	b.expect(t, `{"type":"peer_left","room":"r","peer":"a"}`)
	if got := h.r.Lookup("a"); got != repl.Conn {
		t.Fatal("Lookup(a) does not return the new connection")
	}
	if got := h.r.Members("r"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("members of r = %v, want [b]", got)
	}
	if got := h.r.Rooms(); got != 1 {
		t.Fatalf("Rooms = %d, want 1 (s emptied)", got)
	}
	if got := h.st.EvictedBy(stats.EvictReplaced); got != 1 {
		t.Fatalf("replaced evictions = %d, want 1", got)
	}

	// The old socket's close callback comes later and must not remove
	// the new connection.
	h.join(repl, "r")
	repl.received(t)
	b.expect(t, `{"type":"peer_joined","room":"r","peer":"a"}`)
	h.do(func(bt *router.Batch) error { h.r.Remove(old.Conn, bt); return nil })
	if got := h.r.Lookup("a"); got != repl.Conn {
		t.Fatal("Remove of the replaced connection removed the new one")
	}
	if got := h.r.Members("r"); len(got) != 2 {
		t.Fatalf("members of r = %v, want a and b", got)
	}
	b.expect(t)
	repl.expect(t)
}

func TestJoin(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b, c := h.connect("a"), h.connect("b"), h.connect("c")
	h.join(a, "r")
	a.expect(t, `{"type":"joined","room":"r","peers":[]}`)
	h.join(b, "r")
	b.expect(t, `{"type":"joined","room":"r","peers":["a"]}`)
	a.expect(t, `{"type":"peer_joined","room":"r","peer":"b"}`)
	h.join(c, "r")
	c.expect(t, `{"type":"joined","room":"r","peers":["a","b"]}`)
	a.expect(t, `{"type":"peer_joined","room":"r","peer":"c"}`)
	b.expect(t, `{"type":"peer_joined","room":"r","peer":"c"}`)

	// Joining again only repeats the reply.
	h.join(c, "r")
	c.expect(t, `{"type":"joined","room":"r","peers":["a","b"]}`)
	a.expect(t)
	b.expect(t)
	if got := h.r.Members("r"); len(got) != 3 {
		t.Fatalf("members of r = %v, want 3", got)
	}
}

func TestLeave(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b, c := h.connect("a"), h.connect("b"), h.connect("c")
	for _, p := range []*peer{a, b, c} {
		h.join(p, "r")
	}
	for _, p := range []*peer{a, b, c} {
		p.received(t)
	}
	leave := func(p *peer, room string) error {
		return h.do(func(bt *router.Batch) error { return h.r.Leave(p.Conn, room, bt) })
	}
	if err := leave(b, "r"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	b.expect(t, `{"type":"left","room":"r"}`)
	a.expect(t, `{"type":"peer_left","room":"r","peer":"b"}`)
	c.expect(t, `{"type":"peer_left","room":"r","peer":"b"}`)

	tests := []struct {
		name string
		p    *peer
		room string
	}{
		{"room left already", b, "r"},
		{"room never joined", a, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := leave(tt.p, tt.room); !errors.Is(err, router.ErrNotMember) {
				t.Fatalf("leave = %v, want ErrNotMember", err)
			}
			for _, p := range []*peer{a, b, c} {
				p.expect(t)
			}
		})
	}
}

func TestRoomsCount(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b := h.connect("a"), h.connect("b")
	check := func(want int) {
		t.Helper()
		if got := h.r.Rooms(); got != want {
			t.Fatalf("Rooms = %d, want %d", got, want)
		}
		if got := metric(t, h.st, "wsrelay_rooms"); got != float64(want) {
			t.Fatalf("wsrelay_rooms = %v, want %d", got, want)
		}
	}
	check(0)
	h.join(a, "r")
	h.join(b, "r")
	h.join(a, "s")
	check(2)
	h.do(func(bt *router.Batch) error { return h.r.Leave(a.Conn, "r", bt) })
	check(2)
	h.do(func(bt *router.Batch) error { return h.r.Leave(b.Conn, "r", bt) })
	check(1)
	h.do(func(bt *router.Batch) error { h.r.Remove(a.Conn, bt); return nil })
	check(0)
	if got := h.r.Members("s"); got != nil {
		t.Fatalf("members of a removed room = %v", got)
	}
}

// TestReplacedJoinsNothing: a message from a replaced connection, still
// being read when its replacement registered, cannot put it back into a
// room: the other members never see it join, and nothing is left behind
// for its Remove to clean up.
func TestReplacedJoinsNothing(t *testing.T) {
	h := newRelay(t, defaultOpts)
	old, b := h.connect("a"), h.connect("b")
	h.join(b, "r")
	b.received(t)
	h.connect("a")
	old.sock.take()

	h.join(old, "r")
	if got := h.r.Members("r"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("members of r after the replaced connection joined = %v, want [b]", got)
	}
	b.expect(t)
	if err := h.do(func(bt *router.Batch) error { return h.r.Leave(old.Conn, "r", bt) }); !errors.Is(err, router.ErrNotMember) {
		t.Fatalf("Leave by the replaced connection = %v, want ErrNotMember", err)
	}
	if got := parseFrames(t, old.sock.take()); len(got) != 0 {
		t.Fatalf("replaced connection got %d frames after its close frame", len(got))
	}
}

func TestRemoveLeavesRooms(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b := h.connect("a"), h.connect("b")
	for _, room := range []string{"r", "s"} {
		h.join(a, room)
		h.join(b, room)
	}
	b.received(t)
	h.do(func(bt *router.Batch) error { h.r.Remove(a.Conn, bt); return nil })
	b.expect(t,
		`{"type":"peer_left","room":"r","peer":"a"}`,
		`{"type":"peer_left","room":"s","peer":"a"}`)
	if h.r.Lookup("a") != nil {
		t.Fatal("removed peer still registered")
	}
}

func TestPublish(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, b, c, d, e := h.connect("a"), h.connect("b"), h.connect("c"), h.connect("d"), h.connect("e")
	members := []*peer{a, b, c, d}
	for _, p := range members {
		h.join(p, "r")
	}
	h.join(e, "other")
	for _, p := range append(members, e) {
		p.received(t)
	}
	delivered := metric(t, h.st, "wsrelay_messages_delivered_total")

	refused := []struct {
		name string
		from *peer
		room string
	}{
		{"sender not a member", e, "r"},
		{"room does not exist", a, "nowhere"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			buf := textBuf(`{"type":"publish","room":"r","from":"e","data":1}`)
			err := h.do(func(bt *router.Batch) error { return h.r.Publish(tt.from.Conn, tt.room, buf, bt) })
			if !errors.Is(err, router.ErrNotMember) {
				t.Fatalf("Publish = %v, want ErrNotMember", err)
			}
			if buf.Refs() != 1 {
				t.Fatalf("refused Publish kept a reference (Refs %d)", buf.Refs())
			}
			for _, p := range append(members, e) {
				p.expect(t)
			}
		})
	}

	buf := textBuf(`{"type":"publish","room":"r","from":"a","data":{"n":1}}`)
	var bt router.Batch
	if err := h.r.Publish(a.Conn, "r", buf, &bt); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := buf.Refs(); got != 4 {
		t.Fatalf("Refs before the flush = %d, want 4 (the sender's and 3 queues')", got)
	}
	if bt.Len() != 3 {
		t.Fatalf("batch holds %d conns, want 3", bt.Len())
	}
	bt.Flush()
	if got := buf.Refs(); got != 1 {
		t.Fatalf("Refs after the flush = %d, want 1", got)
	}
	for _, p := range []*peer{b, c, d} {
		if got := p.sock.take(); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("%s got %q, want the published frame", p.ID, got)
		}
	}
	a.expect(t)
	e.expect(t)
	if got := metric(t, h.st, "wsrelay_messages_delivered_total") - delivered; got != 3 {
		t.Errorf("delivered += %v, want 3", got)
	}
}

// TestPublishFullRecipient: a recipient whose queue is full loses the
// message (queue_full); the other members still get it.
func TestPublishFullRecipient(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a, slow, c := h.connect("a"), h.connect("slow"), h.connect("c")
	for _, p := range []*peer{a, slow, c} {
		h.join(p, "r")
	}
	for range 16 { // fill slow's queue, the flush left owed
		slow.Enqueue(textBuf("filler"))
	}
	c.received(t)
	buf := textBuf(`{"type":"publish","room":"r","from":"a","data":0}`)
	if err := h.do(func(bt *router.Batch) error { return h.r.Publish(a.Conn, "r", buf, bt) }); err != nil {
		t.Fatal(err)
	}
	if got := h.st.DroppedBy(stats.DropQueueFull); got != 1 {
		t.Fatalf("queue_full drops = %d, want 1", got)
	}
	if got := c.sock.take(); !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("c got %q, want the message", got)
	}
	if buf.Refs() != 1 {
		t.Fatalf("Refs = %d, want 1", buf.Refs())
	}
}

func TestDirect(t *testing.T) {
	h := newRelay(t, defaultOpts)
	a := h.connect("a")
	buf := textBuf(`{"type":"direct","from":"b","data":"hi"}`)

	err := h.do(func(bt *router.Batch) error { return h.r.Direct("nobody", buf, bt) })
	if !errors.Is(err, router.ErrPeerNotFound) {
		t.Fatalf("Direct to an unknown peer = %v, want ErrPeerNotFound", err)
	}
	if got := h.st.DroppedBy(stats.DropNoRoute); got != 1 {
		t.Fatalf("no_route drops = %d, want 1", got)
	}
	if buf.Refs() != 1 {
		t.Fatalf("refused Direct kept a reference (Refs %d)", buf.Refs())
	}

	var bt router.Batch
	if err := h.r.Direct("a", buf, &bt); err != nil {
		t.Fatalf("Direct: %v", err)
	}
	if buf.Refs() != 2 {
		t.Fatalf("Refs before the flush = %d, want 2", buf.Refs())
	}
	bt.Flush()
	if got := a.sock.take(); !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("a got %q, want the message", got)
	}
	if buf.Refs() != 1 {
		t.Fatalf("Refs after the flush = %d, want 1", buf.Refs())
	}
	if got := h.st.DroppedBy(stats.DropNoRoute); got != 1 {
		t.Fatalf("no_route drops = %d after a delivered Direct, want 1", got)
	}
}

func TestBroadcast(t *testing.T) {
	tests := []struct {
		name    string
		allow   bool
		wantErr error
	}{
		{"disabled", false, router.ErrForbidden},
		{"enabled", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := defaultOpts
			opts.AllowBroadcast = tt.allow
			h := newRelay(t, opts)
			var peers []*peer
			for i := range 20 {
				peers = append(peers, h.connect(fmt.Sprintf("p%02d", i)))
			}
			buf := textBuf(`{"type":"broadcast","from":"p00","data":true}`)
			err := h.do(func(bt *router.Batch) error { return h.r.Broadcast(peers[0].Conn, buf, bt) })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Broadcast = %v, want %v", err, tt.wantErr)
			}
			for i, p := range peers {
				var want []byte
				if tt.allow && i > 0 {
					want = buf.Bytes()
				}
				if got := p.sock.take(); !bytes.Equal(got, want) {
					t.Errorf("%s got %q, want %q", p.ID, got, want)
				}
			}
			if buf.Refs() != 1 {
				t.Fatalf("Refs = %d, want 1", buf.Refs())
			}
		})
	}
}

func TestTooManyRooms(t *testing.T) {
	h := newRelay(t, router.Options{MaxRoomsPerPeer: 2})
	a := h.connect("a")
	join := func(room string) error {
		return h.do(func(bt *router.Batch) error { return h.r.Join(a.Conn, room, bt) })
	}
	steps := []struct {
		name    string
		do      func() error
		wantErr error
	}{
		{"first room", func() error { return join("r1") }, nil},
		{"second room", func() error { return join("r2") }, nil},
		{"third room", func() error { return join("r3") }, router.ErrTooManyRooms},
		{"rejoin a room it is in", func() error { return join("r1") }, nil},
		{"leave one", func() error {
			return h.do(func(bt *router.Batch) error { return h.r.Leave(a.Conn, "r1", bt) })
		}, nil},
		{"third room after leaving one", func() error { return join("r3") }, nil},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.wantErr)
		}
	}
	if got := h.r.Members("r3"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("members of r3 = %v", got)
	}
}

func TestRoomFull(t *testing.T) {
	h := newRelay(t, router.Options{MaxRoomsPerPeer: 4, MaxRoomPeers: 2})
	a, b, c := h.connect("a"), h.connect("b"), h.connect("c")
	h.join(a, "r")
	h.join(b, "r")
	a.received(t)
	b.received(t)
	err := h.do(func(bt *router.Batch) error { return h.r.Join(c.Conn, "r", bt) })
	if !errors.Is(err, router.ErrRoomFull) {
		t.Fatalf("joining a full room = %v, want ErrRoomFull", err)
	}
	a.expect(t)
	b.expect(t)
	c.expect(t)
	if got := h.r.Members("r"); len(got) != 2 {
		t.Fatalf("members = %v, want 2", got)
	}
	// A refused join does not count against the peer's rooms.
	for _, room := range []string{"s1", "s2", "s3", "s4"} {
		h.join(c, room)
	}
	h.do(func(bt *router.Batch) error { return h.r.Leave(b.Conn, "r", bt) })
	err = h.do(func(bt *router.Batch) error { return h.r.Join(c.Conn, "r", bt) })
	if !errors.Is(err, router.ErrTooManyRooms) {
		t.Fatalf("join after a seat freed, with 4 rooms of 4 = %v, want ErrTooManyRooms", err)
	}
	h.do(func(bt *router.Batch) error { return h.r.Leave(c.Conn, "s1", bt) })
	h.join(c, "r")
}

// TestJoinedPeersCapped: the joined reply lists at most MaxJoinedPeers
// other members.
func TestJoinedPeersCapped(t *testing.T) {
	h := newRelay(t, defaultOpts)
	others := 0
	for _, n := range []int{router.MaxJoinedPeers - 1, router.MaxJoinedPeers, router.MaxJoinedPeers + 1} {
		t.Run(fmt.Sprint(n, " others"), func(t *testing.T) {
			for ; others < n; others++ {
				p := h.newPeer(fmt.Sprintf("m%04d", others))
				p.sock.discard = true
				h.r.Register(p.Conn)
				h.join(p, "big")
			}
			probe := h.connect("probe")
			h.join(probe, "big")
			var reply struct {
				Type  string
				Room  string
				Peers []string
			}
			got := probe.received(t)
			if len(got) != 1 {
				t.Fatalf("probe got %d messages", len(got))
			}
			if err := json.Unmarshal([]byte(got[0]), &reply); err != nil {
				t.Fatal(err)
			}
			want := min(n, router.MaxJoinedPeers)
			if reply.Type != "joined" || reply.Room != "big" || len(reply.Peers) != want {
				t.Fatalf("reply %s %s with %d peers, want joined big with %d", reply.Type, reply.Room, len(reply.Peers), want)
			}
			seen := map[string]bool{}
			for _, id := range reply.Peers {
				if id == "probe" || seen[id] || !strings.HasPrefix(id, "m") {
					t.Fatalf("bad or repeated peer %q in joined", id)
				}
				seen[id] = true
			}
			h.do(func(bt *router.Batch) error { h.r.Remove(probe.Conn, bt); return nil })
		})
	}
}

// TestConcurrentRouting publishes into a room while members join and leave
// it and a replacement connection takes over a member's id; run with -race.
func TestConcurrentRouting(t *testing.T) {
	h := newRelay(t, router.Options{MaxRoomsPerPeer: 8, AllowBroadcast: true})
	const n = 8
	var peers []*peer
	for i := range n {
		p := h.newPeer(fmt.Sprintf("p%d", i))
		p.sock.discard = true
		h.r.Register(p.Conn)
		peers = append(peers, p)
	}
	h.join(peers[0], "r")
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			var bt router.Batch
			for j := range 300 {
				buf := textBuf("m")
				switch {
				case i == 0:
					_ = h.r.Publish(p.Conn, "r", buf, &bt)
				case j%2 == 0:
					_ = h.r.Join(p.Conn, "r", &bt)
				default:
					_ = h.r.Leave(p.Conn, "r", &bt)
					_ = h.r.Broadcast(p.Conn, buf, &bt)
					_ = h.r.Direct("p0", buf, &bt)
				}
				buf.Release()
				bt.Flush()
			}
		})
	}
	wg.Wait()
	if got := h.r.Members("r"); !slices.Equal(got, []string{"p0"}) {
		t.Fatalf("members after everyone else left = %v, want [p0]", got)
	}
}
