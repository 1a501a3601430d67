package frame

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendFrameHeader(t *testing.T) {
	tests := []struct {
		name string
		op   byte
		n    int
		want []byte
	}{
		{"empty text", OpText, 0, []byte{0x81, 0x00}},
		{"7-bit max", OpBinary, 125, []byte{0x82, 125}},
		{"16-bit min", OpText, 126, []byte{0x81, 126, 0x00, 0x7E}},
		{"16-bit max", OpText, 65535, []byte{0x81, 126, 0xFF, 0xFF}},
		{"64-bit min", OpBinary, 65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"64-bit large", OpBinary, 1 << 40, []byte{0x82, 127, 0, 0, 1, 0, 0, 0, 0, 0}},
		{"close", OpClose, 2, []byte{0x88, 0x02}},
		{"ping", OpPing, 0, []byte{0x89, 0x00}},
		{"pong", OpPong, 5, []byte{0x8A, 0x05}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			got := AppendFrameHeader(prefix, tt.op, tt.n)
			if !bytes.Equal(got[:4], []byte("keep")) || !bytes.Equal(got[4:], tt.want) {
				t.Fatalf("AppendFrameHeader(%#x, %d) = % x, want keep + % x", tt.op, tt.n, got, tt.want)
			}
		})
	}
	t.Run("negative length panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("AppendFrameHeader(-1) did not panic")
			}
		}()
		AppendFrameHeader(nil, OpText, -1)
	})
}

func TestAppendMaskedFrame(t *testing.T) {
	key := [4]byte{0x01, 0x80, 0xFF, 0x7E}
	for _, n := range []int{0, 1, 3, 4, 7, 8, 9, 31, 32, 33, 125, 126, 127, 1000, 65535, 65536, 70000} {
		for _, fin := range []bool{true, false} {
			payload := bytes.Repeat([]byte("abcdefg"), n/7+1)[:n]
			f := AppendMaskedFrame(nil, fin, OpBinary, key, payload)

			b0 := byte(OpBinary)
			if fin {
				b0 |= 0x80
			}
			hdr := AppendFrameHeader(nil, OpBinary, n)
			hdr[0] = b0
			hdr[1] |= 0x80
			hdr = append(hdr, key[:]...)
			if !bytes.Equal(f[:len(hdr)], hdr) {
				t.Fatalf("n=%d fin=%v: header % x, want % x", n, fin, f[:len(hdr)], hdr)
			}
			body := f[len(hdr):]
			if len(body) != n {
				t.Fatalf("n=%d: body length %d", n, len(body))
			}
			for i := range body {
				if body[i]^key[i%4] != payload[i] {
					t.Fatalf("n=%d: byte %d masked wrongly", n, i)
				}
			}
		}
	}
	t.Run("payload untouched", func(t *testing.T) {
		p := []byte("hello")
		AppendMaskedFrame(nil, true, OpText, key, p)
		if string(p) != "hello" {
			t.Fatalf("payload modified: %q", p)
		}
	})
}

func TestAppendCloseFrame(t *testing.T) {
	long := strings.Repeat("x", 200)
	// A 2-byte rune that straddles the 123-byte cut.
	straddle := strings.Repeat("a", 122) + "é" + "tail"
	tests := []struct {
		name       string
		code       int
		reason     string
		wantReason string
	}{
		{"code 0 has no payload", 0, "ignored", ""},
		{"code only", CloseNormal, "", ""},
		{"code and reason", CloseGoingAway, "server shutting down", "server shutting down"},
		{"123-byte reason kept", CloseTooBig, long[:123], long[:123]},
		{"long reason truncated", ClosePolicyViolation, long, long[:123]},
		{"truncated at rune boundary", CloseReplaced, straddle, straddle[:122]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := AppendCloseFrame(nil, tt.code, tt.reason)
			if f[0] != 0x88 || f[1]&0x80 != 0 {
				t.Fatalf("header % x: want unmasked FIN close", f[:2])
			}
			n := int(f[1])
			if n != len(f)-2 || n > 125 {
				t.Fatalf("length byte %d, frame length %d", n, len(f))
			}
			if tt.code == 0 {
				if n != 0 {
					t.Fatalf("code 0: payload % x, want empty", f[2:])
				}
				return
			}
			if got := int(binary.BigEndian.Uint16(f[2:])); got != tt.code {
				t.Errorf("code %d, want %d", got, tt.code)
			}
			if got := string(f[4:]); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			if !utf8.Valid(f[4:]) {
				t.Errorf("reason is not valid UTF-8")
			}
		})
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4001, 4999}
	invalid := []int{-1, 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535, 65536}
	for _, c := range valid {
		if !ValidCloseCode(c) {
			t.Errorf("ValidCloseCode(%d) = false, want true", c)
		}
	}
	for _, c := range invalid {
		if ValidCloseCode(c) {
			t.Errorf("ValidCloseCode(%d) = true, want false", c)
		}
	}
}

func TestWebSocketMask(t *testing.T) {
	key := [4]byte{0xDE, 0xAD, 0xBE, 0xEF}
	k := binary.LittleEndian.Uint32(key[:])
	naive := func(b []byte, phase int) {
		for i := range b {
			b[i] ^= key[(phase+i)%4]
		}
	}
	src := make([]byte, 200)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for n := 0; n <= len(src); n++ {
		want := append([]byte(nil), src[:n]...)
		naive(want, 0)
		got := append([]byte(nil), src[:n]...)
		maskBytes(k, got)
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: maskBytes differs from byte-wise masking", n)
		}
		// Masking in two pieces, threading the key, gives the same result.
		for cut := 0; cut <= n; cut += 1 + n/13 {
			got := append([]byte(nil), src[:n]...)
			k2 := maskBytes(k, got[:cut])
			maskBytes(k2, got[cut:])
			if !bytes.Equal(got, want) {
				t.Fatalf("n=%d cut=%d: piecewise masking differs", n, cut)
			}
		}
	}
}
