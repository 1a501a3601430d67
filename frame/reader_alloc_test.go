//go:build !race

package frame

import (
	"errors"
	"strings"
	"testing"
)

// countHandler counts callbacks without allocating.
type countHandler struct{ messages, controls, bytes int }

func (c *countHandler) OnMessage(_ byte, p []byte) { c.messages++; c.bytes += len(p) }
func (c *countHandler) OnPing(p []byte)            { c.controls++ }
func (c *countHandler) OnPong(p []byte)            { c.controls++ }
func (c *countHandler) OnClose(int, string)        { c.controls++ }

func TestReaderFeedAllocs(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	var frames []byte
	for _, s := range []string{`{"type":"ping"}`, "héllo", "", strings.Repeat("x", 200), `{"type":"publish","room":"r","data":1}`} {
		frames = AppendMaskedFrame(frames, true, OpText, key, []byte(s))
	}
	frames = AppendMaskedFrame(frames, true, OpPing, key, []byte("p"))
	frames = AppendMaskedFrame(frames, true, OpBinary, key, []byte{0, 1, 2})

	var fragmented []byte
	fragmented = AppendMaskedFrame(fragmented, false, OpText, key, []byte("part one, "))
	fragmented = AppendMaskedFrame(fragmented, false, OpContinuation, key, []byte("part two, "))
	fragmented = AppendMaskedFrame(fragmented, true, OpContinuation, key, []byte("the end"))

	// Compressed messages with short Huffman codes: for longer ones
	// compress/flate allocates its overflow tables itself (see inflate).
	var compressed []byte
	for _, s := range []string{"", strings.Repeat(`{"type":"publish","room":"r","data":"hello"}`, 100)} {
		compressed = append(compressed, zmsg(OpText, s, 1)...)
	}
	compressed = append(compressed, zmsg(OpBinary, strings.Repeat("abc", 5000), 3)...)

	tests := []struct {
		name     string
		deflate  bool
		in       []byte
		cut      int // fed in two chunks cut here; 0: one chunk
		messages int
	}{
		{"complete frames in one chunk", false, frames, 0, 6},
		{"frame split across chunks", false, frames, len(frames) / 2, 6},
		{"fragmented message", false, fragmented, 0, 1},
		{"compressed messages", true, compressed, 0, 3},
		{"compressed messages split across chunks", true, compressed, len(compressed) / 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{MaxMessage: 1 << 16, Deflate: tt.deflate}
			h := &countHandler{}
			buf := make([]byte, len(tt.in))
			allocs := testing.AllocsPerRun(100, func() {
				copy(buf, tt.in) // Feed unmasks in place
				*h = countHandler{}
				chunks := [][]byte{buf}
				if tt.cut > 0 {
					chunks = [][]byte{buf[:tt.cut], buf[tt.cut:]}
				}
				for _, c := range chunks {
					if err := r.Feed(c, h); err != nil {
						t.Fatal(err)
					}
				}
			})
			if h.messages != tt.messages {
				t.Fatalf("%d messages, want %d", h.messages, tt.messages)
			}
			if allocs != 0 {
				t.Fatalf("Feed allocates %v times per run, want 0", allocs)
			}
		})
	}
}

// TestReaderFailAllocs checks that a protocol violation costs no allocation:
// Feed returns a shared sentinel, so a flood of bad frames cannot make the
// server allocate per connection to report them.
func TestReaderFailAllocs(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"header violation", AppendMaskedFrame(nil, true, 0x3, key, []byte("x")), ErrBadOpcode},
		{"payload violation", AppendMaskedFrame(nil, true, OpText, key, []byte("\xff")), ErrInvalidUTF8},
		{"close violation", AppendMaskedFrame(nil, true, OpClose, key, []byte{0x03, 0xED}), ErrBadCloseCode},
		{"compressed control frame", zfirst(true, OpPing, "x"), ErrCompressedControl},
		{"corrupt compressed data", zfirst(true, OpText, "\x07"), ErrBadDeflate},
		{"inflation bomb", zfirst(true, OpBinary, string(bomb(1))), ErrInflatedTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{MaxMessage: 1 << 16, Deflate: true}
			h := &countHandler{}
			buf := make([]byte, len(tt.in))
			var err error
			allocs := testing.AllocsPerRun(100, func() {
				copy(buf, tt.in)
				r.Reset()
				err = r.Feed(buf, h)
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Feed = %v, want %v", err, tt.want)
			}
			if allocs != 0 {
				t.Fatalf("a failing Feed allocates %v times per run, want 0", allocs)
			}
		})
	}
}
