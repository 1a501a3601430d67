package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/frame"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const welcomeFmt = `{"type":"welcome","peer":%q,"server":"wsrelay/test","heartbeat_ms":25000,"timeout_ms":60000,"max_message_bytes":65536,"queue_size":256}`

// fakeServer is a minimal relay stand-in: it upgrades /ws, sends a welcome
// (peer from ?peer=, else "srv-assigned") unless told not to, runs the
// test's session on the connection, then reads until the client goes away
// (answering its close handshake).
type fakeServer struct {
	URL string // ws://.../ws

	srv   *httptest.Server
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*websocket.Conn
}

type session func(ws *websocket.Conn, r *http.Request)

func newFakeServer(t *testing.T, welcome bool, s session) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.wg.Add(1)
		defer f.wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		f.mu.Lock()
		f.conns = append(f.conns, ws)
		f.mu.Unlock()
		if welcome {
			peer := r.URL.Query().Get("peer")
			if peer == "" {
				peer = "srv-assigned"
			}
			if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, welcomeFmt, peer)); err != nil {
				return
			}
		}
		if s != nil {
			s(ws, r)
		}
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	f.URL = "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		for _, ws := range f.conns {
			ws.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func dial(t *testing.T, url string, opts *Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv receives from ch, failing the test after five seconds.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting on the fake server")
		panic("unreachable")
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialWelcome(t *testing.T) {
	got := make(chan *http.Request, 1)
	f := newFakeServer(t, true, func(_ *websocket.Conn, r *http.Request) { got <- r })

	c := dial(t, f.URL+"?keep=1", &Options{
		Peer:   "alice",
		Token:  "tok.en.jwt",
		Query:  map[string][]string{"device": {"phone"}},
		Header: http.Header{"Origin": {"https://app.example.com"}},
	})
	r := recv(t, got)
	q := r.URL.Query()
	for k, want := range map[string]string{"peer": "alice", "device": "phone", "keep": "1"} {
		if q.Get(k) != want {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if h := r.Header.Get("Authorization"); h != "Bearer tok.en.jwt" {
		t.Errorf("Authorization = %q", h)
	}
	if h := r.Header.Get("Origin"); h != "https://app.example.com" {
		t.Errorf("Origin = %q", h)
	}

	if c.PeerID() != "alice" {
		t.Errorf("PeerID = %q, want alice", c.PeerID())
	}
	w := c.Welcome()
	if w.Type != "welcome" || w.Server != "wsrelay/test" || w.HeartbeatMS != 25000 || w.TimeoutMS != 60000 ||
		w.MaxMessageBytes != 65536 || w.QueueSize != 256 {
		t.Errorf("Welcome = %+v", w)
	}
}

func TestDialServerAssignedPeerHTTPURL(t *testing.T) {
	f := newFakeServer(t, true, nil)
	// http:// is accepted as an alias of ws://.
	c := dial(t, f.srv.URL+"/ws", nil)
	if c.PeerID() != "srv-assigned" {
		t.Errorf("PeerID = %q, want srv-assigned", c.PeerID())
	}
}

func TestDialHandshakeError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
	}{
		{"bad_peer", http.StatusBadRequest, ""},
		{"unauthorized", http.StatusUnauthorized, ""},
		{"origin", http.StatusForbidden, ""},
		{"per_ip", http.StatusTooManyRequests, ""},
		{"full", http.StatusServiceUnavailable, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				http.Error(w, "refused: "+tt.name, tt.status)
			}))
			t.Cleanup(srv.Close)
			c, err := Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("err = %v (%T), want *HandshakeError", err, err)
			}
			if he.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", he.StatusCode, tt.status)
			}
			if got := he.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			if !strings.Contains(he.Body, "refused: "+tt.name) {
				t.Errorf("Body = %q", he.Body)
			}
			want := fmt.Sprintf("client: handshake refused: %d %s: refused: %s", tt.status, http.StatusText(tt.status), tt.name)
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q (the relay's reason shown)", err.Error(), want)
			}
		})
	}
}

func TestHandshakeErrorReason(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes, cut inside a rune
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", "client: handshake refused: 403 Forbidden"},
		{"first line only", "origin not allowed\nmore detail\n", "client: handshake refused: 403 Forbidden: origin not allowed"},
		{"control characters", "bad\x1b[31mred\r", "client: handshake refused: 403 Forbidden: bad?[31mred"},
		{"long", long, "client: handshake refused: 403 Forbidden: " + strings.Repeat("é", 100) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &HandshakeError{StatusCode: http.StatusForbidden, Body: tt.body}
			if got := e.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDialWithoutWelcome(t *testing.T) {
	tests := []struct {
		name  string
		s     session
		check func(t *testing.T, err error)
	}{
		{
			name: "other_first",
			s: func(ws *websocket.Conn, _ *http.Request) {
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong","time":1}`))
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoWelcome) {
					t.Errorf("err = %v, want ErrNoWelcome", err)
				}
			},
		},
		{
			name: "closed_first",
			s: func(ws *websocket.Conn, _ *http.Request) {
				ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "replaced"))
			},
			check: func(t *testing.T, err error) {
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "replaced" {
					t.Errorf("err = %v, want CloseError 4001 replaced", err)
				}
			},
		},
		{
			name: "silent",
			s:    func(*websocket.Conn, *http.Request) {},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want DeadlineExceeded", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, false, tt.s)
			c, err := Dial(testCtx(t), f.URL, &Options{HandshakeTimeout: 200 * time.Millisecond})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			tt.check(t, err)
		})
	}
}

func TestReceive(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  Message
	}{
		{"joined", `{"type":"joined","room":"lobby","peers":["bob","carol"]}`,
			Message{Type: "joined", Room: "lobby", Peers: []string{"bob", "carol"}}},
		{"joined_alone", `{"type":"joined","room":"lobby","peers":[]}`,
			Message{Type: "joined", Room: "lobby", Peers: []string{}}},
		{"left", `{"type":"left","room":"lobby"}`, Message{Type: "left", Room: "lobby"}},
		{"peer_joined", `{"type":"peer_joined","room":"lobby","peer":"bob"}`,
			Message{Type: "peer_joined", Room: "lobby", Peer: "bob"}},
		{"peer_left", `{"type":"peer_left","room":"lobby","peer":"bob"}`,
			Message{Type: "peer_left", Room: "lobby", Peer: "bob"}},
		{"direct", `{"type":"direct","from":"bob","data":{"sdp": "v=0\r\n",  "n":[1, 2]}}`,
			Message{Type: "direct", From: "bob", Data: json.RawMessage(`{"sdp": "v=0\r\n",  "n":[1, 2]}`)}},
		{"publish", `{"type":"publish","room":"doc/1","from":"bob","data":"hi"}`,
			Message{Type: "publish", Room: "doc/1", From: "bob", Data: json.RawMessage(`"hi"`)}},
		{"broadcast", `{"type":"broadcast","from":"bob","data":null}`,
			Message{Type: "broadcast", From: "bob", Data: json.RawMessage(`null`)}},
		{"pong", `{"type":"pong","time":1700000000123}`, Message{Type: "pong", Time: 1700000000123}},
		{"ack_number", `{"type":"ack","id":42}`, Message{Type: "ack", ID: json.RawMessage(`42`)}},
		{"ack_string", `{"type":"ack","id":"a-1"}`, Message{Type: "ack", ID: json.RawMessage(`"a-1"`)}},
		{"overflow", `{"type":"overflow","dropped":18446744073709551615}`,
			Message{Type: "overflow", Dropped: 18446744073709551615}},
		{"error", `{"type":"error","code":"not_member","message":"not a member of lobby","id":7}`,
			Message{Type: "error", Code: "not_member", Message: "not a member of lobby", ID: json.RawMessage(`7`)}},
		{"unknown_fields", `{"extra":{"a":1},"type":"left","room":"r"}`, Message{Type: "left", Room: "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
				ws.WriteMessage(websocket.TextMessage, []byte(tt.frame))
			})
			c := dial(t, f.URL, nil)
			m, err := c.Receive(testCtx(t))
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if string(m.Raw) != tt.frame {
				t.Errorf("Raw = %s, want %s", m.Raw, tt.frame)
			}
			m.Raw = nil
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("Receive =\n%+v\nwant\n%+v", m, tt.want)
			}
		})
	}
}

func TestReceiveMalformed(t *testing.T) {
	bad := []string{`[1,2]`, `{"type":5}`, `{}`, `not json`}
	f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
		for _, b := range bad {
			ws.WriteMessage(websocket.TextMessage, []byte(b))
		}
		ws.WriteMessage(websocket.BinaryMessage, []byte{2, 1, 0, 0, 0, 0})
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"left","room":"r"}`))
	})
	c := dial(t, f.URL, nil)
	ctx := testCtx(t)
	for _, b := range append(bad, "\x02\x01\x00\x00\x00\x00") {
		m, err := c.Receive(ctx)
		if !errors.Is(err, ErrBadMessage) {
			t.Errorf("Receive(%q) err = %v, want ErrBadMessage", b, err)
		}
		if string(m.Raw) != b {
			t.Errorf("Raw = %q, want %q", m.Raw, b)
		}
	}
	// The connection survives malformed frames.
	if m, err := c.Receive(ctx); err != nil || m.Type != "left" {
		t.Errorf("Receive after malformed = %+v, %v", m, err)
	}
}

func TestReceiveBinary(t *testing.T) {
	// Server headers built by hand from docs/protocol.md section 4, not with
	// package frame, so the test checks the client against the spec.
	tests := []struct {
		name     string
		frame    []byte
		wantRoom string
		want     Binary
	}{
		{"direct", append([]byte{1, 1, 7, 0x80, 3, 'b', 'o', 'b', 0}, "payload"...), "",
			Binary{Op: frame.BinDirect, CType: 7, Flags: 0x80, From: "bob", Payload: []byte("payload")}},
		{"publish", append([]byte{1, 2, 1, 0, 3, 'b', 'o', 'b', 5, 'd', 'o', 'c', '/', '1'}, 0, 1, 2), "doc/1",
			Binary{Op: frame.BinPublish, CType: 1, From: "bob", To: "doc/1", Payload: []byte{0, 1, 2}}},
		{"broadcast_empty", []byte{1, 3, 0, 0, 1, 'x', 0}, "",
			Binary{Op: frame.BinBroadcast, From: "x", Payload: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
				ws.WriteMessage(websocket.BinaryMessage, tt.frame)
			})
			c := dial(t, f.URL, nil)
			m, err := c.Receive(testCtx(t))
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if m.Type != "binary" || m.From != tt.want.From || m.Room != tt.wantRoom || !bytes.Equal(m.Raw, tt.frame) {
				t.Errorf("Message = %+v", m)
			}
			if m.Binary == nil {
				t.Fatal("Binary is nil")
			}
			b := *m.Binary
			if b.Op != tt.want.Op || b.CType != tt.want.CType || b.Flags != tt.want.Flags ||
				b.From != tt.want.From || b.To != tt.want.To || !bytes.Equal(b.Payload, tt.want.Payload) {
				t.Errorf("Binary = %+v, want %+v", b, tt.want)
			}
		})
	}
}

func TestReceiveType(t *testing.T) {
	f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"peer_joined","room":"r","peer":"a"}`))
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"peer_left","room":"r","peer":"a"}`))
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","id":1}`))
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong","time":5}`))
	})
	c := dial(t, f.URL, nil)
	ctx := testCtx(t)
	m, err := c.ReceiveType(ctx, "ack")
	if err != nil || string(m.ID) != "1" {
		t.Fatalf("ReceiveType(ack) = %+v, %v", m, err)
	}
	if m, err := c.Receive(ctx); err != nil || m.Type != "pong" {
		t.Fatalf("Receive after ReceiveType = %+v, %v", m, err)
	}
}

func TestReceiveContext(t *testing.T) {
	f := newFakeServer(t, true, nil)
	c := dial(t, f.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.ReceiveType(ctx, "ack"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ReceiveType = %v, want DeadlineExceeded", err)
	}
}

// recorder is a session that forwards every message the client sends.
type recorded struct {
	typ  int
	data []byte
}

func recorder(out chan<- recorded) session {
	return func(ws *websocket.Conn, _ *http.Request) {
		for {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				close(out)
				return
			}
			out <- recorded{typ, data}
		}
	}
}

func TestSend(t *testing.T) {
	tests := []struct {
		name     string
		send     func(c *Client) error
		wantType int
		want     string
	}{
		{"join", func(c *Client) error { return c.Join("lobby", nil) }, websocket.TextMessage,
			`{"type":"join","room":"lobby"}`},
		{"join_id", func(c *Client) error { return c.Join("lobby", 1) }, websocket.TextMessage,
			`{"type":"join","room":"lobby","id":1}`},
		{"leave", func(c *Client) error { return c.Leave("lobby", "x") }, websocket.TextMessage,
			`{"type":"leave","room":"lobby","id":"x"}`},
		{"direct", func(c *Client) error { return c.Direct("bob", map[string]int{"n": 1}, 7) }, websocket.TextMessage,
			`{"type":"direct","to":"bob","data":{"n":1},"id":7}`},
		{"direct_raw_unchanged", func(c *Client) error {
			return c.Direct("bob", json.RawMessage(`{ "sdp" : "v=0",  "x":[1, 2] }`), nil)
		}, websocket.TextMessage,
			`{"type":"direct","to":"bob","data":{ "sdp" : "v=0",  "x":[1, 2] }}`},
		{"direct_nil_data", func(c *Client) error { return c.Direct("bob", nil, nil) }, websocket.TextMessage,
			`{"type":"direct","to":"bob","data":null}`},
		{"publish", func(c *Client) error { return c.Publish("doc/1", "hi", "p1") }, websocket.TextMessage,
			`{"type":"publish","room":"doc/1","data":"hi","id":"p1"}`},
		{"broadcast", func(c *Client) error { return c.Broadcast([]int{1, 2}, nil) }, websocket.TextMessage,
			`{"type":"broadcast","data":[1,2]}`},
		{"ping", func(c *Client) error { return c.Ping(nil) }, websocket.TextMessage, `{"type":"ping"}`},
		{"raw_id", func(c *Client) error { return c.Ping(json.RawMessage(`{"bad":"id"}`)) }, websocket.TextMessage,
			`{"type":"ping","id":{"bad":"id"}}`},
		{"text_invalid_utf8", func(c *Client) error { return c.SendText([]byte("{\xff")) }, websocket.TextMessage,
			"{\xff"},
		{"binary_direct", func(c *Client) error {
			return c.SendBinary(frame.BinDirect, 2, 0x81, "bob", []byte("img"))
		}, websocket.BinaryMessage, "\x01\x01\x02\x81\x00\x03bobimg"},
		{"binary_broadcast", func(c *Client) error {
			return c.SendBinary(frame.BinBroadcast, 0, 0, "", nil)
		}, websocket.BinaryMessage, "\x01\x03\x00\x00\x00\x00"},
		{"raw_binary", func(c *Client) error { return c.SendRaw(websocket.BinaryMessage, []byte{9, 9}) },
			websocket.BinaryMessage, "\x09\x09"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan recorded, 1)
			f := newFakeServer(t, true, recorder(got))
			c := dial(t, f.URL, nil)
			if err := tt.send(c); err != nil {
				t.Fatalf("send: %v", err)
			}
			r := recv(t, got)
			if r.typ != tt.wantType || string(r.data) != tt.want {
				t.Errorf("server got type %d %q, want type %d %q", r.typ, r.data, tt.wantType, tt.want)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	f := newFakeServer(t, true, nil)
	c := dial(t, f.URL, nil)
	if err := c.SendBinary(frame.BinDirect, 0, 0, strings.Repeat("a", 256), nil); err == nil {
		t.Error("SendBinary with a 256-byte to succeeded")
	}
	if err := c.Direct("bob", func() {}, nil); err == nil {
		t.Error("Direct with unencodable data succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, send := range map[string]func() error{
		"direct":    func() error { return c.Direct("bob", 1, nil) },
		"binary":    func() error { return c.SendBinary(frame.BinBroadcast, 0, 0, "", nil) },
		"writeping": func() error { return c.WritePing(nil) },
	} {
		if err := send(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestSendConcurrent(t *testing.T) {
	const senders, each = 8, 200
	got := make(chan recorded, senders*each)
	f := newFakeServer(t, true, recorder(got))
	c := dial(t, f.URL, nil)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				if err := c.Direct("bob", map[string]int{"g": g, "i": i}, nil); err != nil {
					t.Errorf("Direct: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := make([]int, senders)
	for range senders * each {
		r := recv(t, got)
		var m struct {
			Data struct{ G, I int }
		}
		if err := json.Unmarshal(r.data, &m); err != nil {
			t.Fatalf("server got invalid JSON %q: %v", r.data, err)
		}
		if m.Data.I != next[m.Data.G] {
			t.Fatalf("sender %d: got i=%d, want %d (reordered)", m.Data.G, m.Data.I, next[m.Data.G])
		}
		next[m.Data.G]++
	}
}

func TestCloseCodePropagation(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		reason string
	}{
		{"replaced", 4001, "replaced"},
		{"shutdown", websocket.CloseGoingAway, ""},
		{"too_large", websocket.CloseMessageTooBig, "frame too large"},
		{"policy", websocket.ClosePolicyViolation, "rate limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"left","room":"r"}`))
				ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(tt.code, tt.reason))
			})
			c := dial(t, f.URL, nil)
			ctx := testCtx(t)
			// Messages sent before the close are delivered first.
			if m, err := c.Receive(ctx); err != nil || m.Type != "left" {
				t.Fatalf("Receive = %+v, %v", m, err)
			}
			for range 2 { // and the close error is sticky
				_, err := c.Receive(ctx)
				var ce *CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("Receive = %v, want *CloseError", err)
				}
				if ce.Code != tt.code || ce.Reason != tt.reason {
					t.Errorf("CloseError = %d %q, want %d %q", ce.Code, ce.Reason, tt.code, tt.reason)
				}
				if !errors.Is(err, ErrClosed) {
					t.Error("CloseError does not match ErrClosed")
				}
			}
			if err := c.Join("r", nil); !errors.Is(err, ErrClosed) {
				t.Errorf("Join after close = %v, want ErrClosed", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close after remote close = %v", err)
			}
		})
	}
}

// serverRead runs a session that reports the error ending the server's read.
func serverRead(out chan<- error) session {
	return func(ws *websocket.Conn, _ *http.Request) {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				out <- err
				return
			}
		}
	}
}

func TestClose(t *testing.T) {
	got := make(chan error, 1)
	f := newFakeServer(t, true, serverRead(got))
	c := dial(t, f.URL, nil)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := recv(t, got); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("server read ended with %v, want close 1000", err)
	}
	// The relay echoed the close: the handshake completed.
	var ce *CloseError
	if _, err := c.Receive(testCtx(t)); !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("Receive after Close = %v, want CloseError 1000", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.CloseNow(); err != nil {
		t.Errorf("CloseNow after Close: %v", err)
	}
}

func TestCloseNow(t *testing.T) {
	got := make(chan error, 1)
	f := newFakeServer(t, true, serverRead(got))
	c := dial(t, f.URL, nil)
	if err := c.CloseNow(); err != nil {
		t.Fatalf("CloseNow: %v", err)
	}
	// No close frame: the server sees an abnormal closure.
	if err := recv(t, got); !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
		t.Errorf("server read ended with %v, want abnormal closure 1006", err)
	}
	var ce *CloseError
	if _, err := c.Receive(testCtx(t)); !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
		t.Errorf("Receive after CloseNow = %v, want CloseError 1006", err)
	}
	if err := c.CloseNow(); err != nil {
		t.Errorf("second CloseNow: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after CloseNow: %v", err)
	}
}

func TestCloseWhileReaderBlocked(t *testing.T) {
	// The receive channel holds one message and nobody calls Receive: the
	// reader blocks (backpressure). Close must still finish promptly and
	// leave no goroutine behind (goleak checks in TestMain).
	f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
		for range 100 {
			if ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong","time":1}`)) != nil {
				return
			}
		}
	})
	c := dial(t, f.URL, &Options{ReceiveBuffer: 1})
	time.Sleep(20 * time.Millisecond) // let the reader fill the channel and block
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > closeTimeout/2 {
		t.Errorf("Close took %v with a blocked reader", d)
	}
}

func TestReadLimit(t *testing.T) {
	got := make(chan error, 1)
	f := newFakeServer(t, true, func(ws *websocket.Conn, r *http.Request) {
		big := fmt.Appendf(nil, `{"type":"direct","from":"b","data":%q}`, strings.Repeat("x", 200))
		ws.WriteMessage(websocket.TextMessage, big)
		serverRead(got)(ws, r)
	})
	c := dial(t, f.URL, &Options{ReadLimit: 200}) // room for the welcome only
	var ce *CloseError
	if _, err := c.Receive(testCtx(t)); !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("Receive = %v, want CloseError 1009", err)
	}
	if err := recv(t, got); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("server read ended with %v, want close 1009", err)
	}
}

func TestAutoPong(t *testing.T) {
	// Once auto-pong is set, the server pings, then sends a marker. The
	// client answers the marker
	// with a text frame; since the ping is handled before the marker is
	// delivered, a pong (if any) reaches the server before that text frame.
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			pongs := make(chan string, 1)
			got := make(chan recorded, 1)
			f := newFakeServer(t, true, func(ws *websocket.Conn, r *http.Request) {
				ws.SetPongHandler(func(data string) error { pongs <- data; return nil })
				if _, _, err := ws.ReadMessage(); err != nil { // the client has set auto-pong
					return
				}
				ws.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(time.Second))
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong","time":1}`))
				recorder(got)(ws, r)
			})
			c := dial(t, f.URL, nil)
			c.SetAutoPong(on)
			if err := c.Ping(nil); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReceiveType(testCtx(t), "pong"); err != nil {
				t.Fatal(err)
			}
			if n := c.PingsReceived(); n != 1 {
				t.Errorf("PingsReceived = %d, want 1", n)
			}
			if err := c.Ping(nil); err != nil {
				t.Fatal(err)
			}
			recv(t, got)
			var pong string
			select {
			case pong = <-pongs:
			default:
			}
			if want := map[bool]string{true: "hb", false: ""}[on]; pong != want {
				t.Errorf("server got pong %q, want %q", pong, want)
			}
		})
	}
}

func TestWritePing(t *testing.T) {
	pings := make(chan string, 1)
	f := newFakeServer(t, true, func(ws *websocket.Conn, _ *http.Request) {
		ws.SetPingHandler(func(data string) error { pings <- data; return nil })
	})
	c := dial(t, f.URL, nil)
	if err := c.WritePing([]byte("are you there")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, pings); got != "are you there" {
		t.Errorf("server got ping %q", got)
	}
}

func TestNetConn(t *testing.T) {
	f := newFakeServer(t, true, nil)
	c := dial(t, f.URL, nil)
	if c.NetConn() == nil || c.NetConn().RemoteAddr().String() != f.srv.Listener.Addr().String() {
		t.Errorf("NetConn = %v", c.NetConn())
	}
}
