package session_test

import (
	"encoding/binary"
	"encoding/json"
	"sync"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// fakeSocket is an in-memory conn.Socket: it keeps every byte written and
// reports it written at once, as a socket whose kernel buffer never fills.
type fakeSocket struct {
	c *conn.Conn // set once the Conn is made

	mu      sync.Mutex
	out     []byte
	closed  bool
	onWrite func(b []byte) // if set, sees every write before it is kept
}

func (f *fakeSocket) Write(b []byte) (int, error) {
	f.mu.Lock()
	if f.onWrite != nil {
		f.onWrite(b)
	}
	f.out = append(f.out, b...)
	f.mu.Unlock()
	f.c.Written(len(b))
	return len(b), nil
}

func (f *fakeSocket) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// wframe is one WebSocket frame the server wrote.
type wframe struct {
	op      byte
	payload []byte
}

// take returns the complete frames written since the last call.
func (f *fakeSocket) take(t testing.TB) []wframe {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wframe
	b := f.out
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated frame header % x", b)
		}
		op, n, h := b[0]&0x0f, int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if b[0]&0x80 == 0 || b[1]&0x80 != 0 || len(b) < h+n {
			t.Fatalf("bad server frame % x", b)
		}
		out = append(out, wframe{op, append([]byte(nil), b[h:h+n]...)})
		b = b[h+n:]
	}
	f.out = f.out[:0]
	return out
}

// rig is one server's protocol without a network: a router, counters, a
// Handler, and peers on fake sockets.
type rig struct {
	t   *testing.T
	env *conn.Env
	rt  *router.Router
	st  *stats.Stats
	set *vm.Set
	h   *session.Handler
}

type rigOptions struct {
	router    router.Options
	binary    map[byte]int
	rateMsgs  int
	rateBurst int
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	set := vm.NewSet()
	st := stats.New(set, 100)
	d := conn.NewDrainer(1)
	t.Cleanup(d.Stop)
	env := conn.NewEnv(16, st, d)
	env.RateMsgs, env.RateBurst = o.rateMsgs, o.rateBurst
	rt := router.New(o.router, st)
	h := session.New(session.Config{
		Version: "test", PingInterval: 25 * time.Second, ClientTimeout: 60 * time.Second,
		MaxMessageBytes: 65536, QueueSize: 16, BinaryTypes: o.binary,
	}, session.Deps{Router: rt, Stats: st, Metrics: set, RoomTokens: rigRoomTokens(t)})
	return &rig{t: t, env: env, rt: rt, st: st, set: set, h: h}
}

// peer is one connection of a rig.
type peer struct {
	r    *rig
	id   string
	sock *fakeSocket
	sess *session.Session
	sc   session.Scratch
	open bool // OnMessage has not asked to stop reading
}

// connect opens and greets peer id and consumes its welcome.
func (r *rig) connect(id string) *peer {
	r.t.Helper()
	return r.connectRooms(id, auth.AllRooms())
}

// connectRooms is connect for a peer whose credential allows rooms.
func (r *rig) connectRooms(id string, rooms auth.Rooms) *peer {
	r.t.Helper()
	p := r.openRooms(id, false, rooms)
	p.sess.Greet(nil)
	if got := p.next(); got["type"] != "welcome" {
		r.t.Fatalf("%s: first frame %v, want welcome", id, got)
	}
	return p
}

func (r *rig) open(id string, echo bool) *peer {
	return r.openRooms(id, echo, auth.AllRooms())
}

func (r *rig) openRooms(id string, echo bool, rooms auth.Rooms) *peer {
	sock := &fakeSocket{}
	c := conn.New(r.env, id, "127.0.0.1", sock)
	sock.c = c
	p := &peer{r: r, id: id, sock: sock, open: true}
	if echo {
		p.sess = r.h.OpenEcho(c)
	} else {
		p.sess = r.h.Open(c, auth.Identity{Peer: id, Base: id, Rooms: rooms})
	}
	r.t.Cleanup(func() { p.close() })
	return p
}

// close ends the session as the transport does when the socket closed.
func (p *peer) close() {
	var bt router.Batch
	p.sess.OnClose(p.sock, &bt)
	bt.Flush()
	p.sess.Conn().Teardown()
}

// sendOp hands one message to the session and flushes what it routed, as
// the transport does at the end of a read.
func (p *peer) sendOp(op byte, msg []byte) {
	p.open = p.sess.OnMessage(op, msg, &p.sc)
	p.sc.Batch.Flush()
}

func (p *peer) send(msg string) { p.sendOp(frame.OpText, []byte(msg)) }

// all returns every frame written to the peer since the last look, text
// frames decoded.
func (p *peer) all() []wframe { return p.sock.take(p.r.t) }

// next returns the only text message written to the peer since the last
// look, decoded.
func (p *peer) next() map[string]any {
	p.r.t.Helper()
	fs := p.all()
	if len(fs) != 1 || fs[0].op != frame.OpText {
		p.r.t.Fatalf("%s: want one text frame, got %d: %s", p.id, len(fs), dump(fs))
	}
	return decode(p.r.t, fs[0].payload)
}

// none asserts that nothing was written to the peer since the last look.
func (p *peer) none() {
	p.r.t.Helper()
	if fs := p.all(); len(fs) != 0 {
		p.r.t.Fatalf("%s: unexpected frames: %s", p.id, dump(fs))
	}
}

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("server sent invalid JSON %q: %v", b, err)
	}
	return m
}

func dump(fs []wframe) string {
	s := ""
	for _, f := range fs {
		s += string(rune('0'+f.op)) + ":" + string(f.payload) + " "
	}
	return s
}

// rigSecret is the JWT secret a rig's room tokens are checked with.
const rigSecret = "0123456789abcdef0123456789abcdef-rig"

func rigRoomTokens(t testing.TB) *auth.RoomTokens {
	rt, err := auth.NewRoomTokens(config.Config{JWTSecret: rigSecret})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}
