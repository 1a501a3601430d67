package conn

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/wsrelay/wsrelay/frame"
)

// rawFrame is one server frame with its first byte (FIN, RSV, opcode).
type rawFrame struct {
	b0      byte
	payload []byte
}

// splitFrames splits a server-to-client stream into frames, RSV bits kept.
func splitFrames(t *testing.T, b []byte) []rawFrame {
	t.Helper()
	var out []rawFrame
	for len(b) > 0 {
		if len(b) < 2 || b[1]&0x80 != 0 {
			t.Fatalf("bad server frame % x", b[:min(len(b), 10)])
		}
		n, rest := uint64(b[1]&0x7F), b[2:]
		switch n {
		case 126:
			n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
		case 127:
			n, rest = binary.BigEndian.Uint64(rest), rest[8:]
		}
		out = append(out, rawFrame{b0: b[0], payload: rest[:n]})
		b = rest[n:]
	}
	return out
}

// inflateMessage inflates a permessage-deflate payload.
func inflateMessage(t *testing.T, p []byte) string {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	m, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return string(m)
}

// TestFlushDeflate: the same queued frames reach a peer that negotiated
// permessage-deflate compressed (when large enough) and a peer that did not
// plain; the bytes saved are counted for the compressed delivery only.
func TestFlushDeflate(t *testing.T) {
	env := newEnv(t, 16, 0)
	env.CompressMin = 512
	zc, zs := newConn(t, env, "z")
	zc.Deflate = true
	pc, ps := newConn(t, env, "p")

	bigBody := `{"type":"publish","room":"lobby","from":"alice","data":"` + strings.Repeat("v=0 o=- 4611731400430051336 2 IN IP4 127.0.0.1 ", 40) + `"}`
	big := textBuf(bigBody)
	small := textBuf(`{"type":"publish","room":"lobby","from":"alice","data":"hi"}`)
	for _, c := range []*Conn{zc, pc} {
		c.Enqueue(big)
		c.Enqueue(small)
		c.Flush(nil)
	}

	zf := splitFrames(t, zs.Bytes())
	if len(zf) != 2 {
		t.Fatalf("deflate peer got %d frames, want 2", len(zf))
	}
	if zf[0].b0 != 0xC1 {
		t.Fatalf("large frame to the deflate peer: first byte %#x, want 0xC1 (FIN, RSV1, text)", zf[0].b0)
	}
	if got := inflateMessage(t, zf[0].payload); got != bigBody {
		t.Fatalf("inflated message differs from the one sent (%d vs %d bytes)", len(got), len(bigBody))
	}
	if zf[1].b0 != 0x81 || string(zf[1].payload) != string(small.Body()) {
		t.Fatalf("small frame to the deflate peer: %#x %q, want it plain", zf[1].b0, zf[1].payload)
	}
	if !bytes.Equal(ps.Bytes(), append(append([]byte(nil), big.Bytes()...), small.Bytes()...)) {
		t.Fatal("the plain peer did not get the plain frames")
	}
	wireZ := len(zs.Bytes())
	wireP := len(ps.Bytes())
	if wireZ*3 > wireP {
		t.Errorf("compressed delivery %d bytes, plain %d: want a third or less", wireZ, wireP)
	}
	if got, want := metric(t, env.Stats, "wsrelay_compression_saved_bytes_total"), float64(wireP-wireZ); got != want {
		t.Errorf("wsrelay_compression_saved_bytes_total = %v, want %v", got, want)
	}
	// The compressed form lives with the frame: every later recipient gets
	// the same bytes without compressing again.
	if z := big.Deflated(env.CompressMin); !bytes.Equal(z[2:], zs.Bytes()[2:len(z)]) {
		t.Error("the frame's shared compressed form differs from what was written")
	}
	big.Release()
	small.Release()
}

// TestFlushDeflateShutdown: the close frame that ends a drained
// connection is never compressed (control frames cannot be).
func TestFlushDeflateShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newEnv(t, 16, 0)
		env.CompressMin = 0
		c, s := newConn(t, env, "z")
		c.Deflate = true
		msg := paddedBuf("m", 1000)
		_, owed := c.Enqueue(msg)
		msg.Release()
		cf := closeBuf(frame.CloseGoingAway)
		c.Shutdown(cf)
		cf.Release()
		if owed {
			c.Flush(nil)
		}
		synctest.Wait()
		fs := splitFrames(t, s.Bytes())
		if len(fs) != 2 || fs[0].b0 != 0xC1 || fs[1].b0 != 0x88 {
			t.Fatalf("%d frames, want a compressed text frame (0xC1) then a plain close (0x88)", len(fs))
		}
		if !s.Closed() {
			t.Fatal("socket not closed after the close frame")
		}
	})
}
