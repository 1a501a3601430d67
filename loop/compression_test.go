package loop_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// Tests of permessage-deflate (docs/protocol.md section 13) through a real
// server, with a raw client that offers the extension, compresses what it
// sends and reads RSV1 on what it gets. Modelled on the Autobahn
// testsuite's sections 12 (compressed echo of many sizes) and 13 (each
// combination of offered parameters).

// zConn is a raw WebSocket client that may have negotiated
// permessage-deflate.
type zConn struct {
	net.Conn
	br  *bufio.Reader
	ext string // the server's Sec-WebSocket-Extensions answer
}

// zDial upgrades path with the Sec-WebSocket-Extensions offer ext (none when
// empty). The upgrade must succeed whatever the offer.
func zDial(t *testing.T, addr, path, ext string) *zConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := nc.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("offer %q: status %d, want 101", ext, resp.StatusCode)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return &zConn{Conn: nc, br: br, ext: resp.Header.Get("Sec-WebSocket-Extensions")}
}

// deflated compresses msg as permessage-deflate without context takeover.
func deflated(msg []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.DefaultCompression)
	fw.Write(msg)
	fw.Flush()
	return b.Bytes()[:b.Len()-4]
}

// sendMsg sends one message: compressed (RSV1) or not, in frames of at most
// fragSize payload bytes (0: one frame).
func (zc *zConn) sendMsg(t *testing.T, op byte, msg []byte, compress bool, fragSize int) {
	t.Helper()
	p := msg
	if compress {
		p = deflated(msg)
	}
	var out []byte
	for i := 0; ; i++ {
		n := len(p)
		if fragSize > 0 {
			n = min(n, fragSize)
		}
		o := frame.OpContinuation
		if i == 0 {
			o = op
		}
		start := len(out)
		out = frame.AppendMaskedFrame(out, n == len(p), o, [4]byte{9, 8, 7, 6}, p[:n])
		if i == 0 && compress {
			out[start] |= 0x40
		}
		p = p[n:]
		if len(p) == 0 {
			break
		}
	}
	if _, err := zc.Write(out); err != nil {
		t.Fatal(err)
	}
}

// readMsg reads the next server frame other than a ping (the server never
// fragments) and returns its opcode, whether it had RSV1, and its payload,
// inflated when it had.
func (zc *zConn) readMsg(t *testing.T) (op byte, compressed bool, msg []byte) {
	t.Helper()
	for {
		// Pings come at any time (with session resume, right after data
		// frames): they are not the message.
		if op, compressed, msg = zc.readFrame(t); op != frame.OpPing {
			return op, compressed, msg
		}
	}
}

// readFrame reads the next frame, as readMsg.
func (zc *zConn) readFrame(t *testing.T) (op byte, compressed bool, msg []byte) {
	t.Helper()
	_ = zc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(zc.br, h[:]); err != nil {
		t.Fatalf("read: %v", err)
	}
	if h[0]&0x80 == 0 || h[0]&0x30 != 0 || h[1]&0x80 != 0 {
		t.Fatalf("server frame header % x: want FIN, no RSV2/3, no mask", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126, 127:
		ext := make([]byte, map[uint64]int{126: 2, 127: 8}[n])
		if _, err := io.ReadFull(zc.br, ext); err != nil {
			t.Fatal(err)
		}
		n = 0
		for _, b := range ext {
			n = n<<8 | uint64(b)
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(zc.br, p); err != nil {
		t.Fatal(err)
	}
	op, compressed = h[0]&0x0F, h[0]&0x40 != 0
	if compressed {
		if zc.ext == "" {
			t.Fatal("RSV1 on a connection without permessage-deflate")
		}
		m, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff"))))
		if err != nil {
			t.Fatalf("inflate: %v", err)
		}
		p = m
	}
	return op, compressed, p
}

// readCloseCode reads frames until a close frame and returns its code.
func (zc *zConn) readCloseCode(t *testing.T) int {
	t.Helper()
	for {
		op, _, p := zc.readMsg(t)
		if op == frame.OpClose {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// corpus returns n bytes of text like the JSON wsrelay relays, for sizes
// of Autobahn's section 12; binary messages use the same bytes.
func corpus(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	words := []string{`{"type":"publish",`, `"room":"doc/1",`, `"data":{"op":"insert","pos":`, `"text":"hello`, ` world"`, `},`, `"sdp":"v=0\r\no=- `, `a=candidate:1 1 udp `, `"ice":true,`, `"peer":"p-`}
	var b []byte
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
		b = strconv.AppendInt(b, int64(rng.IntN(1e6)), 10)
	}
	return b[:n]
}

// offers13 are the offers of Autobahn's section 13, with whether wsrelay
// accepts each: it answers every acceptable one with DeflateResponse.
var offers13 = []struct {
	offer  string
	accept bool
}{
	{"permessage-deflate", true},
	{"permessage-deflate; client_no_context_takeover", true},
	{"permessage-deflate; server_no_context_takeover", true},
	{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true},
	{"permessage-deflate; client_max_window_bits", true},
	{"permessage-deflate; client_max_window_bits=8", true},
	{"permessage-deflate; client_max_window_bits=9; client_no_context_takeover", true},
	{"permessage-deflate; client_max_window_bits=15", true},
	{"permessage-deflate; server_max_window_bits=15", true},
	{"permessage-deflate; server_max_window_bits=15; client_max_window_bits=15; server_no_context_takeover; client_no_context_takeover", true},
	{"permessage-deflate; server_max_window_bits=9", false},
	{"permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits", true},
	{"permessage-deflate; unknown_param", false},
	{"permessage-deflate; client_max_window_bits=16", false},
	{"permessage-deflate; server_no_context_takeover=yes", false},
	{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", false},
	{"x-webkit-deflate-frame", false},
}

// TestCompressionNegotiation: with WSRELAY_COMPRESSION=true every offer of
// section 13 is answered with DeflateResponse or declined (no header), and
// the upgrade always succeeds; with it off, nothing is ever accepted.
func TestCompressionNegotiation(t *testing.T) {
	on := relaytest.Start(t, "WSRELAY_COMPRESSION=true", "WSRELAY_ECHO=true")
	off := relaytest.Start(t, "WSRELAY_ECHO=true")
	for i, o := range offers13 {
		t.Run(fmt.Sprint(i, " ", o.offer), func(t *testing.T) {
			want := ""
			if o.accept {
				want = frame.DeflateResponse
			}
			for _, path := range []string{"/echo", "/ws"} {
				if got := zDial(t, on.Addr().String(), path, o.offer).ext; got != want {
					t.Errorf("%s, compression on: Sec-WebSocket-Extensions %q, want %q", path, got, want)
				}
				if got := zDial(t, off.Addr().String(), path, o.offer).ext; got != "" {
					t.Errorf("%s, compression off: Sec-WebSocket-Extensions %q, want none", path, got)
				}
			}
		})
	}
}

// TestCompressionEcho is Autobahn's sections 12 and 13 against /echo with
// compression on: for each accepted offer, text and binary messages of 16
// bytes to MAX_MESSAGE_BYTES, sent compressed in one frame or in fragments
// of 256 and 4096 bytes, and sent plain, come back intact; the server
// compresses its echo exactly when it is at least
// WSRELAY_COMPRESSION_MIN_BYTES long.
func TestCompressionEcho(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_COMPRESSION=true", "WSRELAY_ECHO=true", "WSRELAY_RATE_MSGS=0")
	sizes := []int{0, 16, 64, 256, 511, 512, 1024, 4096, 8192, 16384, 32768, 65536}
	for i, o := range offers13 {
		if !o.accept {
			continue
		}
		t.Run(fmt.Sprint(i, " ", o.offer), func(t *testing.T) {
			zc := zDial(t, ts.Addr().String(), "/echo", o.offer)
			for _, op := range []byte{frame.OpText, frame.OpBinary} {
				for _, size := range sizes {
					for _, mode := range []struct {
						compress bool
						frag     int
					}{{true, 0}, {true, 256}, {true, 4096}, {false, 0}, {false, 1000}} {
						msg := corpus(size, uint64(size))
						zc.sendMsg(t, op, msg, mode.compress, mode.frag)
						gotOp, compressed, got := zc.readMsg(t)
						if gotOp != op || !bytes.Equal(got, msg) {
							t.Fatalf("op %d, %d bytes, compressed %v, fragments of %d: echo op %d, %d bytes, equal %v",
								op, size, mode.compress, mode.frag, gotOp, len(got), bytes.Equal(got, msg))
						}
						if want := size >= 512; compressed != want {
							t.Fatalf("echo of %d bytes: compressed %v, want %v (min 512)", size, compressed, want)
						}
					}
				}
			}
		})
	}
}

// TestCompressionViolations: RSV1 where the extension does not allow it,
// corrupt compressed data and inflation bombs close the connection with the
// codes of section 13; a message that inflates to exactly
// MAX_MESSAGE_BYTES is accepted.
func TestCompressionViolations(t *testing.T) {
	const maxMsg = 4096
	ts := relaytest.Start(t, "WSRELAY_COMPRESSION=true", "WSRELAY_ECHO=true", "WSRELAY_MAX_MESSAGE_BYTES="+strconv.Itoa(maxMsg))
	off := relaytest.Start(t, "WSRELAY_ECHO=true")
	rsv1 := func(b []byte) []byte { b[0] |= 0x40; return b }
	masked := func(fin bool, op byte, p []byte) []byte {
		return frame.AppendMaskedFrame(nil, fin, op, [4]byte{1, 2, 3, 4}, p)
	}
	bomb := deflated(make([]byte, 10<<20)) // 10 MiB of zeros, about 10 KiB
	bomb = bomb[:min(len(bomb), frame.DeflatedLimit(maxMsg))]
	tests := []struct {
		name string
		srv  *relaytest.Server
		ext  string
		wire []byte
		code int
	}{
		{"RSV1, compression off", off, "permessage-deflate", rsv1(masked(true, frame.OpText, deflated([]byte("hello")))), 1002},
		{"RSV1, extension not offered", ts, "", rsv1(masked(true, frame.OpText, deflated([]byte("hello")))), 1002},
		{"RSV1, offer declined", ts, "permessage-deflate; server_max_window_bits=8", rsv1(masked(true, frame.OpText, deflated([]byte("hello")))), 1002},
		{"RSV1 on a ping", ts, "permessage-deflate", rsv1(masked(true, frame.OpPing, []byte("p"))), 1002},
		{"RSV1 on a continuation", ts, "permessage-deflate",
			append(rsv1(masked(false, frame.OpBinary, []byte{0x00})), rsv1(masked(true, frame.OpContinuation, []byte{0x00}))...), 1002},
		{"corrupt compressed data", ts, "permessage-deflate", rsv1(masked(true, frame.OpBinary, []byte{0x07, 0x00})), 1007},
		{"compressed text not UTF-8", ts, "permessage-deflate", rsv1(masked(true, frame.OpText, deflated([]byte("ok\xff")))), 1007},
		{"inflates past MAX_MESSAGE_BYTES", ts, "permessage-deflate", rsv1(masked(true, frame.OpBinary, deflated(corpus(maxMsg+1, 1)))), 1009},
		{"inflation bomb", ts, "permessage-deflate", rsv1(masked(true, frame.OpBinary, bomb)), 1009},
		{"inflation bomb in fragments", ts, "permessage-deflate",
			append(rsv1(masked(false, frame.OpBinary, bomb[:len(bomb)/2])), masked(true, frame.OpContinuation, bomb[len(bomb)/2:])...), 1009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zc := zDial(t, tt.srv.Addr().String(), "/echo", tt.ext)
			if _, err := zc.Write(tt.wire); err != nil {
				t.Fatal(err)
			}
			if code := zc.readCloseCode(t); code != tt.code {
				t.Fatalf("close code %d, want %d", code, tt.code)
			}
		})
	}
	t.Run("exactly MAX_MESSAGE_BYTES once inflated", func(t *testing.T) {
		zc := zDial(t, ts.Addr().String(), "/echo", "permessage-deflate")
		for _, msg := range [][]byte{corpus(maxMsg, 2), randomish(maxMsg)} {
			zc.sendMsg(t, frame.OpBinary, msg, true, 1000)
			if _, _, got := zc.readMsg(t); !bytes.Equal(got, msg) {
				t.Fatalf("echo of %d bytes differs", len(msg))
			}
		}
	})
	_, _, body := ts.Get("/metrics")
	if m := regexp.MustCompile(`wsrelay_evictions_total\{reason="too_large"\} (\d+)`).FindStringSubmatch(body); m == nil || m[1] != "3" {
		t.Errorf("too_large evictions %v, want 3 (one per message over the limit)", m)
	}
}

// randomish returns n incompressible bytes.
func randomish(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestCompressionFanout: a room message of 2 KB reaches a member that
// negotiated permessage-deflate compressed and one that did not plain, both
// intact; the Go client with Options.Compression negotiates and reads it;
// the bytes saved are counted once per compressed delivery.
func TestCompressionFanout(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_COMPRESSION=true")
	addr := ts.Addr().String()

	joinRaw := func(zc *zConn) {
		t.Helper()
		if op, _, w := zc.readMsg(t); op != frame.OpText || !bytes.Contains(w, []byte(`"welcome"`)) {
			t.Fatalf("first frame %q, want the welcome", w)
		}
		zc.sendMsg(t, frame.OpText, []byte(`{"type":"join","room":"lobby"}`), false, 0)
		if _, _, j := zc.readMsg(t); !bytes.Contains(j, []byte(`"joined"`)) {
			t.Fatalf("got %q, want joined", j)
		}
	}
	zr := zDial(t, addr, "/ws?peer=zed", "permessage-deflate; client_max_window_bits")
	if zr.ext != frame.DeflateResponse {
		t.Fatalf("extension answer %q", zr.ext)
	}
	joinRaw(zr)
	pr := zDial(t, addr, "/ws?peer=plain", "")
	joinRaw(pr)
	zr.readMsg(t) // peer_joined plain

	gc, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Peer: "gopher", Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if !gc.Compressed() {
		t.Fatal("the Go client did not negotiate permessage-deflate")
	}
	relaytest.Join(t, gc, "lobby")
	zr.readMsg(t) // peer_joined gopher
	pr.readMsg(t)

	quoted, _ := json.Marshal(string(corpus(2048, 5)))
	data := string(quoted)
	if err := gc.Publish("lobby", json.RawMessage(data), 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, gc, "ack")
	want := `{"type":"publish","room":"lobby","from":"gopher","data":` + data + `}`
	_, zc, zgot := zr.readMsg(t)
	_, pc, pgot := pr.readMsg(t)
	if !zc || pc {
		t.Fatalf("compressed: deflate member %v, plain member %v; want true, false", zc, pc)
	}
	if string(zgot) != want || string(pgot) != want {
		t.Fatalf("members got %d and %d bytes, want the %d-byte publish", len(zgot), len(pgot), len(want))
	}

	// The Go client's own compressed publish went in compressed: the
	// server read far fewer bytes than the message's length.
	st := ts.StatsJSON()
	if in := st["bytes_in"].(float64); in > float64(len(data)) {
		t.Errorf("bytes_in %v after a %d-byte publish: the client's message was not compressed", in, len(data))
	}

	// One more publish, from the plain member, to the Go client.
	pr.sendMsg(t, frame.OpText, []byte(`{"type":"publish","room":"lobby","data":`+data+`}`), false, 0)
	m := relaytest.Recv(t, gc, "publish")
	if string(m.Data) != data {
		t.Fatalf("the Go client got %d bytes of data, want %d", len(m.Data), len(data))
	}
	_, _, body := ts.Get("/metrics")
	mm := regexp.MustCompile(`wsrelay_compression_saved_bytes_total (\d+)`).FindStringSubmatch(body)
	if mm == nil {
		t.Fatal("no wsrelay_compression_saved_bytes_total in /metrics")
	}
	if saved, _ := strconv.Atoi(mm[1]); saved < 2*len(want) {
		t.Errorf("saved %d bytes over three compressed deliveries of %d bytes, want more", saved, len(want))
	}
}
