package frame

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// parseServerFrame decodes an unmasked WebSocket frame independently of
// putHeader (RFC 6455 section 5.2) and checks it holds exactly one frame.
func parseServerFrame(t *testing.T, f []byte) (fin bool, op byte, payload []byte) {
	t.Helper()
	if len(f) < 2 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	fin = f[0]&0x80 != 0
	if f[0]&0x70 != 0 {
		t.Fatalf("RSV bits set: %#x", f[0])
	}
	op = f[0] & 0x0F
	if f[1]&0x80 != 0 {
		t.Fatal("server frame is masked")
	}
	n, rest := uint64(f[1]&0x7F), f[2:]
	switch n {
	case 126:
		n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
		if n < 126 {
			t.Fatalf("16-bit length %d is not minimal", n)
		}
	case 127:
		n, rest = binary.BigEndian.Uint64(rest), rest[8:]
		if n <= 0xFFFF || n>>63 != 0 {
			t.Fatalf("64-bit length %d is not minimal or has the top bit", n)
		}
	}
	if uint64(len(rest)) != n {
		t.Fatalf("length field %d, but %d bytes follow", n, len(rest))
	}
	return fin, op, rest
}

func TestBufFinish(t *testing.T) {
	tests := []struct {
		op        byte
		bodyLen   int
		headerLen int
	}{
		{1, 0, 2},
		{1, 1, 2},
		{2, 125, 2},
		{1, 126, 4},
		{2, 65535, 4},
		{2, 65536, 10},
		{1, 200000, 10},
		{8, 2, 2},
		{9, 0, 2},
		{10, 125, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("op%d/%d", tt.op, tt.bodyLen), func(t *testing.T) {
			body := bytes.Repeat([]byte{0xAB}, tt.bodyLen)
			buf := NewBuf(tt.bodyLen)
			defer buf.Release()
			if len(buf.B) != MaxHeaderLen || len(buf.Body()) != 0 {
				t.Fatalf("new Buf: len(B) = %d, body %d bytes", len(buf.B), len(buf.Body()))
			}
			buf.B = append(buf.B, body...)
			if !bytes.Equal(buf.Body(), body) {
				t.Fatal("Body() does not return the appended body")
			}
			buf.Finish(tt.op)
			wire := buf.Bytes()
			if len(wire) != tt.headerLen+tt.bodyLen {
				t.Fatalf("frame is %d bytes, want %d header + %d body", len(wire), tt.headerLen, tt.bodyLen)
			}
			fin, op, payload := parseServerFrame(t, wire)
			if !fin || op != tt.op || !bytes.Equal(payload, body) {
				t.Fatalf("fin=%v op=%d payload %d bytes", fin, op, len(payload))
			}
		})
	}
}

// TestBufReuse checks that a recycled Buf starts clean: a short frame after
// a long one gets a short header and only its own body.
func TestBufReuse(t *testing.T) {
	for range 50 {
		big := NewBuf(100)
		big.B = append(big.B, strings.Repeat("x", 100)...)
		big.Finish(2)
		big.Release()

		small := NewBuf(100)
		if len(small.B) != MaxHeaderLen || small.Refs() != 1 {
			t.Fatalf("recycled Buf: len(B) = %d, refs = %d", len(small.B), small.Refs())
		}
		small.B = AppendPong(small.B, 5)
		small.Finish(1)
		_, op, payload := parseServerFrame(t, small.Bytes())
		if op != 1 || string(payload) != `{"type":"pong","time":5}` {
			t.Fatalf("op %d payload %q", op, payload)
		}
		small.Release()
	}
}

func TestNewBufCapacity(t *testing.T) {
	for _, hint := range []int{-1, 0, 1, 118, 119, 246, 247, 2038, 2039, 16 << 10, 128<<10 - MaxHeaderLen, 128<<10 - MaxHeaderLen + 1, 1 << 20} {
		buf := NewBuf(hint)
		if room := cap(buf.B) - len(buf.B); room < hint {
			t.Errorf("NewBuf(%d): room for %d body bytes", hint, room)
		}
		pooled := hint <= 128<<10-MaxHeaderLen
		if (buf.class >= 0) != pooled {
			t.Errorf("NewBuf(%d): class %d, want pooled=%v", hint, buf.class, pooled)
		}
		if pooled && cap(buf.B) != bufClasses[buf.class] {
			t.Errorf("NewBuf(%d): cap %d in class of %d", hint, cap(buf.B), bufClasses[buf.class])
		}
		if pooled && buf.class > 0 && bufClasses[buf.class-1] >= hint+MaxHeaderLen {
			t.Errorf("NewBuf(%d): class %d, a smaller one fits", hint, buf.class)
		}
		buf.Release()
	}
}

// TestBufOutgrown checks that a body larger than its hint still works.
func TestBufOutgrown(t *testing.T) {
	buf := NewBuf(10)
	body := strings.Repeat("y", 5000)
	buf.B = append(buf.B, body...)
	buf.Finish(1)
	if _, _, payload := parseServerFrame(t, buf.Bytes()); string(payload) != body {
		t.Fatal("outgrown body lost")
	}
	buf.Release() // dropped, not pooled: must not panic
}

func TestBufRefs(t *testing.T) {
	buf := NewBuf(0)
	if buf.Refs() != 1 {
		t.Fatalf("new Buf has %d refs", buf.Refs())
	}
	buf.Retain(3)
	buf.Retain(0)
	if buf.Refs() != 4 {
		t.Fatalf("refs %d, want 4", buf.Refs())
	}
	for want := int32(3); want >= 0; want-- {
		buf.Release()
		if buf.Refs() != want {
			t.Fatalf("refs %d, want %d", buf.Refs(), want)
		}
	}
}

func TestBufMisusePanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"release twice", func() { b := NewBuf(1 << 20); b.Release(); b.Release() }},
		{"retain after release", func() { b := NewBuf(1 << 20); b.Release(); b.Retain(1) }},
		{"retain negative", func() { b := NewBuf(1 << 20); b.Retain(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			// Unpooled buffers (1 MiB hint), so the misuse cannot leak into
			// the pools used by other tests.
			tt.f()
		})
	}
}

// TestBufSharedRelease shares one frame between many goroutines that read it
// and release it concurrently, as recipients' writers do; run it with -race.
func TestBufSharedRelease(t *testing.T) {
	const holders = 64
	for range 20 {
		buf := NewBuf(64)
		buf.B = AppendBroadcast(buf.B, "alice", []byte(`"hello"`))
		buf.Finish(1)
		want := string(buf.Bytes())
		buf.Retain(holders)

		var wg sync.WaitGroup
		errs := make(chan string, holders)
		for range holders {
			wg.Go(func() {
				if got := string(buf.Bytes()); got != want {
					errs <- got
				}
				buf.Release()
			})
		}
		wg.Wait()
		close(errs)
		for got := range errs {
			t.Fatalf("holder saw %q, want %q", got, want)
		}
		if buf.Refs() != 1 {
			t.Fatalf("refs %d after the holders, want the owner's 1", buf.Refs())
		}
		buf.Release()
	}
}

func ExampleBuf() {
	// Encode once, for three recipients.
	buf := NewBuf(64)
	buf.B = AppendPublish(buf.B, "lobby", "alice", []byte(`"hi"`))
	buf.Finish(1) // text frame
	buf.Retain(3) // one reference per recipient queue

	for range 3 {
		// ... each recipient writes buf.Bytes() to its socket, then:
		buf.Release()
	}
	fmt.Printf("% x\n", buf.Bytes()[:2])
	fmt.Println(string(buf.Body()))
	buf.Release() // the owner's reference: the Buf goes back to its pool
	// Output:
	// 81 3c
	// {"type":"publish","room":"lobby","from":"alice","data":"hi"}
}
