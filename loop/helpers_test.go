package loop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/frame"
)

// testServer is a relay on 127.0.0.1:0 with the defaults plus env.
type testServer struct {
	*Server
	t    *testing.T
	base string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port/ws
}

func startServer(t *testing.T, env ...string) *testServer {
	t.Helper()
	cfg, err := config.Load(append([]string{"WSRELAY_ADDR=127.0.0.1:0"}, env...))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := New(cfg, Options{Version: "test", Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(s.Close)
	addr := s.Addr().String()
	return &testServer{Server: s, t: t, base: "http://" + addr, ws: "ws://" + addr + "/ws"}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dial connects peer (random id when empty).
func (ts *testServer) dial(peer string) *client.Client {
	ts.t.Helper()
	c, err := client.Dial(ctxT(ts.t, 5*time.Second), ts.ws, &client.Options{Peer: peer})
	if err != nil {
		ts.t.Fatalf("dial %q: %v", peer, err)
	}
	ts.t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// dialErr returns the handshake status of a refused dial (0 when accepted).
func (ts *testServer) dialStatus(opts *client.Options) (int, http.Header) {
	ts.t.Helper()
	c, err := client.Dial(ctxT(ts.t, 5*time.Second), ts.ws, opts)
	if err == nil {
		ts.t.Cleanup(func() { _ = c.CloseNow() })
		return 0, nil
	}
	var he *client.HandshakeError
	if !errors.As(err, &he) {
		ts.t.Fatalf("dial: want a handshake error, got %v", err)
	}
	return he.StatusCode, he.Header
}

func (ts *testServer) get(path string) (int, http.Header, string) {
	ts.t.Helper()
	resp, err := http.Get(ts.base + path)
	if err != nil {
		ts.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (ts *testServer) stats() map[string]any {
	ts.t.Helper()
	_, _, body := ts.get("/stats")
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		ts.t.Fatalf("stats: %v in %s", err, body)
	}
	return m
}

// recv receives the next message of type typ within 5 s, skipping others.
func recv(t *testing.T, c *client.Client, typ string) client.Message {
	t.Helper()
	m, err := c.ReceiveType(ctxT(t, 5*time.Second), typ)
	if err != nil {
		t.Fatalf("%s: waiting for %s: %v", c.PeerID(), typ, err)
	}
	return m
}

// next receives the very next message within 5 s.
func next(t *testing.T, c *client.Client) client.Message {
	t.Helper()
	m, err := c.Receive(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("%s: receive: %v", c.PeerID(), err)
	}
	return m
}

// quiet asserts that c receives nothing within d.
func quiet(t *testing.T, c *client.Client, d time.Duration) {
	t.Helper()
	m, err := c.Receive(ctxT(t, d))
	if err == nil {
		t.Fatalf("%s: unexpected message %s", c.PeerID(), m.Raw)
	}
}

// closeCode waits for c's connection to end and returns the close code.
func closeCode(t *testing.T, c *client.Client, within time.Duration) int {
	t.Helper()
	ctx := ctxT(t, within)
	for {
		_, err := c.Receive(ctx)
		if err == nil {
			continue
		}
		var ce *client.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("%s: waiting for close: %v", c.PeerID(), err)
	}
}

// join joins room and waits for joined.
func join(t *testing.T, c *client.Client, room string) client.Message {
	t.Helper()
	if err := c.Join(room, nil); err != nil {
		t.Fatal(err)
	}
	return recv(t, c, "joined")
}

// rawConn is a bare WebSocket client without goroutines: for tests that
// need many sockets or a peer that never reads.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func rawDial(t testing.TB, addr, path string) *rawConn {
	t.Helper()
	rc, err := tryRawDial(addr, path)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// tryRawDial is rawDial for goroutines other than the test's: it returns
// the error instead of failing the test.
func tryRawDial(addr, path string) (*rawConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake write: %w", err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake read: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		nc.Close()
		return nil, fmt.Errorf("handshake: accept %q", got)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return &rawConn{Conn: nc, br: br}, nil
}

// send writes one masked frame.
func (rc *rawConn) send(fin bool, op byte, payload []byte) error {
	_, err := rc.Write(frame.AppendMaskedFrame(nil, fin, op, [4]byte{1, 2, 3, 4}, payload))
	return err
}

// read reads one server frame (unmasked, unfragmented).
func (rc *rawConn) read(d time.Duration) (op byte, payload []byte, err error) {
	_ = rc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err = io.ReadFull(rc.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(rc.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(b[0])<<8 | int(b[1])
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(rc.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, x := range b {
			n = n<<8 | int(x)
		}
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(rc.br, payload)
	return h[0] & 0x0f, payload, err
}

// readClose reads frames until a close frame and returns its code.
func (rc *rawConn) readClose(t *testing.T, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		op, p, err := rc.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for close frame: %v", err)
		}
		if op == frame.OpClose {
			if len(p) < 2 {
				return 1005
			}
			return int(p[0])<<8 | int(p[1])
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustContain(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("missing %q", s)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("WSRELAY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
