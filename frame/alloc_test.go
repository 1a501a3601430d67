//go:build !race

package frame

import (
	"strings"
	"testing"
)

// The zero-allocation promises of the package. The race detector makes
// sync.Pool drop items on purpose, hence the build tag.

func TestScanEnvelopeAllocs(t *testing.T) {
	msgs := []string{
		`{"type":"direct","id":"req-1","to":"bob","data":{"sdp":"v=0\r\n","candidates":[1,2.5e3,true,null]}}`,
		`{"type":"publish","room":"lobby","data":"` + strings.Repeat("QUJD", 4096) + `"}`,
		`{"type":"join","id":7,"room":"game:42:lobby","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}`,
		`{"type":"x","data":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`,
		`{"type":"x","data":` + strings.Repeat("[", 10000), // too deep
		`{"type":1}`,
		`not json`,
	}
	for _, m := range msgs {
		msg := []byte(m)
		var e Envelope
		if n := testing.AllocsPerRun(100, func() { _ = ScanEnvelope(msg, &e) }); n != 0 {
			t.Errorf("ScanEnvelope(%.40q...): %v allocs", m, n)
		}
	}
}

func TestParseHeaderAllocs(t *testing.T) {
	for _, msg := range [][]byte{
		append(AppendClientHeader(nil, BinPublish, 1, 0, "lobby"), "payload"...),
		{1, 1, 0, 0, 0, 3, 'a', '/', 'b'}, // failure path
		{9},
	} {
		var h Header
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseClientHeader(msg, &h) }); n != 0 {
			t.Errorf("ParseClientHeader(%q): %v allocs", msg, n)
		}
	}
	msg := append(AppendServerHeader(nil, BinPublish, 1, 0, "alice", "lobby"), "payload"...)
	var h Header
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseServerHeader(msg, &h) }); n != 0 {
		t.Errorf("ParseServerHeader: %v allocs", n)
	}
}

func TestAppendAllocs(t *testing.T) {
	data := []byte(`{"sdp":"v=0"}`)
	id := []byte(`"req-1"`)
	peers := []string{"alice", "bob"}
	dst := make([]byte, 0, 1024)
	builders := map[string]func(){
		"AppendPublish":   func() { dst = AppendPublish(dst[:0], "lobby", "alice", data) },
		"AppendDirect":    func() { dst = AppendDirect(dst[:0], "alice", data) },
		"AppendBroadcast": func() { dst = AppendBroadcast(dst[:0], "alice", data) },
		"AppendWelcome":   func() { dst = AppendWelcome(dst[:0], "alice", "wsrelay/1", 25000, 60000, 65536, 256) },
		"AppendJoined":    func() { dst = AppendJoined(dst[:0], "lobby", peers) },
		"AppendLeft":      func() { dst = AppendLeft(dst[:0], "lobby") },
		"AppendPeerLeft":  func() { dst = AppendPeerLeft(dst[:0], "lobby", "bob") },
		"AppendPong":      func() { dst = AppendPong(dst[:0], 1700000000000) },
		"AppendAck":       func() { dst = AppendAck(dst[:0], id) },
		"AppendOverflow":  func() { dst = AppendOverflow(dst[:0], 12) },
		"AppendError":     func() { dst = AppendError(dst[:0], "bad_request", "bad \"room\"\n", id) },
		"AppendHeaders": func() {
			dst = AppendServerHeader(dst[:0], BinPublish, 1, 0, "alice", "lobby")
			dst = AppendClientHeader(dst, BinDirect, 1, 0, "bob")
		},
	}
	for name, f := range builders {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs", name, n)
		}
	}
}

func TestBufCycleAllocs(t *testing.T) {
	for _, size := range []int{10, 1000, 10000, 100000} {
		body := []byte(`"` + strings.Repeat("x", size) + `"`)
		cycle := func() {
			buf := NewBuf(len(body) + 64)
			buf.B = AppendPublish(buf.B, "lobby", "alice", body)
			buf.Finish(1)
			buf.Retain(2)
			_ = buf.Bytes()
			buf.Release()
			buf.Release()
			buf.Release()
		}
		cycle() // warm the pool
		if n := testing.AllocsPerRun(100, cycle); n != 0 {
			t.Errorf("Buf cycle with a %d-byte body: %v allocs", size, n)
		}
	}
}

// TestBufDeflatedAllocs: compressing a frame for its recipients takes a
// pooled compressor and a pooled Buf, so a steady stream of compressed
// fan-outs does not allocate; later recipients only load a pointer.
func TestBufDeflatedAllocs(t *testing.T) {
	for _, size := range []int{600, 2000, 20000} {
		body := []byte(`"` + strings.Repeat("hello world ", size/12) + `"`)
		cycle := func() {
			buf := NewBuf(len(body) + 64)
			buf.B = AppendPublish(buf.B, "lobby", "alice", body)
			buf.Finish(OpText)
			buf.Retain(2)
			for range 3 {
				if buf.Deflated(512) == nil {
					t.Fatal("not compressed")
				}
				buf.Release()
			}
		}
		cycle() // warm the pools
		if n := testing.AllocsPerRun(100, cycle); n != 0 {
			t.Errorf("compressed Buf cycle with a %d-byte body: %v allocs", size, n)
		}
	}
}
