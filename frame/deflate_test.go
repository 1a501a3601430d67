package frame

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// zfirst returns a masked frame with RSV1 set and payload as is (not
// compressed): the first frame of a compressed message when op is a data
// opcode.
func zfirst(fin bool, op byte, payload string) []byte {
	f := mf(fin, op, payload)
	f[0] |= 0x40
	return f
}

// zmsg returns a compressed message as a client sends it: msg compressed
// with permessage-deflate, split into n frames (n >= 1), RSV1 on the first.
func zmsg(op byte, msg string, n int) []byte {
	z := string(appendDeflated(nil, []byte(msg)))
	var b []byte
	for i := range n {
		part := z[len(z)*i/n : len(z)*(i+1)/n]
		o := OpContinuation
		if i == 0 {
			o = op
		}
		f := mf(i == n-1, o, part)
		if i == 0 {
			f[0] |= 0x40
		}
		b = append(b, f...)
	}
	return b
}

// refInflate inflates a permessage-deflate payload with a fresh
// compress/flate reader, the reference for inflate.
func refInflate(p []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader(deflateTail))))
}

// jsonish returns n bytes of JSON-like text that compresses like the
// messages wsrelay relays (an SDP offer, chat), deterministic for seed.
func jsonish(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{`"type":"publish"`, `"room":"lobby"`, `"sdp":"v=0\r\n`, `a=candidate:`, `"from":"peer-`, `udp`, `typ host`, `{"data":`, `1 `, `2 `}
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(words[rng.IntN(len(words))])
		fmt.Fprintf(&sb, "%d,", rng.IntN(100000))
	}
	return sb.String()[:n]
}

// randomBytes returns n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestDeflateRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 100, 125, 126, 1000, 4096, 4097, 65535, 65536, 200000} {
		for _, kind := range []string{"json", "random"} {
			t.Run(fmt.Sprintf("%s/%d", kind, n), func(t *testing.T) {
				msg := []byte(jsonish(n, uint64(n)))
				if kind == "random" {
					msg = randomBytes(n, uint64(n))
				}
				z := appendDeflated(nil, msg)
				ref, err := refInflate(z)
				if err != nil || !bytes.Equal(ref, msg) {
					t.Fatalf("compress/flate inflates our output to %d bytes (err %v), want the %d sent", len(ref), err, n)
				}
				got, ce := inflate(z, n)
				if ce != nil || !bytes.Equal(got, msg) {
					t.Fatalf("inflate = %d bytes, %v; want the %d sent", len(got), ce, n)
				}
				putMsg(got)
				if n > 0 {
					if _, ce := inflate(z, n-1); ce != ErrInflatedTooBig {
						t.Fatalf("inflate with limit %d = %v, want ErrInflatedTooBig", n-1, ce)
					}
				}
				if kind == "json" && n >= 1000 && len(z)*2 > n {
					t.Errorf("JSON of %d bytes compresses to %d, want under half", n, len(z))
				}
				if kind == "random" && len(z) > DeflatedLimit(n) {
					t.Errorf("incompressible %d bytes compress to %d, over DeflatedLimit %d", n, len(z), DeflatedLimit(n))
				}
			})
		}
	}
}

// bomb returns a permessage-deflate payload that inflates to mib MiB of
// zeros: one compressed MiB, ending in a sync flush, repeated.
func bomb(mib int) []byte {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(make([]byte, 1<<20))
	fw.Flush()
	return bytes.Repeat(z.Bytes(), mib)[:mib*z.Len()-4]
}

// TestInflateBomb sends a message that inflates to a gigabyte and checks
// that it is refused after about MaxMessage bytes of work, whole and in
// fragments, with close code 1009.
func TestInflateBomb(t *testing.T) {
	payload := bomb(1 << 10) // 1 GiB of zeros
	t.Logf("1 GiB of zeros compresses to %d bytes", len(payload))
	const maxMsg = 65536
	for _, frames := range []int{1, 7} {
		t.Run(fmt.Sprintf("%d frames", frames), func(t *testing.T) {
			// A compressed 1 GiB is over the wire limit: cut it to the
			// largest compressed message accepted.
			p := string(payload[:DeflatedLimit(maxMsg)])
			var in []byte
			for i := range frames {
				part := p[len(p)*i/frames : len(p)*(i+1)/frames]
				o := OpContinuation
				if i == 0 {
					o = OpBinary
				}
				f := mf(i == frames-1, o, part)
				if i == 0 {
					f[0] |= 0x40
				}
				in = append(in, f...)
			}
			r := &Reader{MaxMessage: maxMsg, Deflate: true}
			h := &recorder{}
			var before, after runtimeMem
			before.read()
			err := r.Feed(in, h)
			after.read()
			if !errors.Is(err, ErrInflatedTooBig) || closeCode(err) != CloseTooBig {
				t.Fatalf("Feed = %v, want ErrInflatedTooBig (1009)", err)
			}
			if len(h.events) != 0 {
				t.Fatalf("%d messages delivered", len(h.events))
			}
			// The output buffer is at most a 64 KiB pool class; allow
			// for the decompressor's window and tables, generously.
			if grew := after.total - before.total; grew > 4*maxMsg+(1<<20) {
				t.Errorf("inflating the bomb allocated %d bytes, want about MaxMessage (%d)", grew, maxMsg)
			}
		})
	}
}

// BenchmarkInflateBomb shows the time side of the bomb: refusing a message
// that inflates to a gigabyte costs about as much as inflating MaxMessage
// (64 KiB) bytes, nowhere near a gigabyte's worth (about a second). The
// allocation side is TestInflateBomb.
func BenchmarkInflateBomb(b *testing.B) {
	const limit = 65536
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(make([]byte, limit))
	fw.Flush()
	fits := z.Bytes()[:z.Len()-4]
	for _, tc := range []struct {
		name    string
		payload []byte
		want    *CloseError
	}{
		{"refuse 1 GiB", bomb(1 << 10), ErrInflatedTooBig},
		{"inflate 64 KiB", fits, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(limit)
			for b.Loop() {
				out, ce := inflate(tc.payload, limit)
				if ce != tc.want {
					b.Fatalf("inflate = %v, want %v", ce, tc.want)
				}
				putMsg(out)
			}
		})
	}
}

// runtimeMem reads the heap's cumulative allocation.
type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.total = ms.TotalAlloc
}

func TestReaderDeflate(t *testing.T) {
	long := jsonish(20000, 7)
	tests := []struct {
		name string
		max  int
		in   []byte
		want []event
	}{
		{"text, one frame", 0, zmsg(OpText, "hello hello hello", 1), []event{textEv("hello hello hello")}},
		{"binary, one frame", 0, zmsg(OpBinary, "\x00\x01\x02\x00\x01\x02", 1), []event{binEv("\x00\x01\x02\x00\x01\x02")}},
		{"empty compressed message", 0, zmsg(OpText, "", 1), []event{textEv("")}},
		{"fragmented in 5", 0, zmsg(OpText, long, 5), []event{textEv(long)}},
		{"fragments with an empty one", 0, cat(zfirst(false, OpText, ""), mf(true, OpContinuation, string(appendDeflated(nil, []byte("abc"))))), []event{textEv("abc")}},
		{"ping between compressed fragments", 0, cat(zfirst(false, OpBinary, string(appendDeflated(nil, []byte("xyz")))), ping("p"), mf(true, OpContinuation, "")), []event{pingEv("p"), binEv("xyz")}},
		{"plain and compressed mixed", 0, cat(text("plain"), zmsg(OpText, "packed", 1), bin("raw"), zmsg(OpBinary, long, 3)), []event{textEv("plain"), textEv("packed"), binEv("raw"), binEv(long)}},
		{"exactly MaxMessage once inflated", 20000, zmsg(OpText, long, 2), []event{textEv(long)}},
		{"incompressible, exactly MaxMessage", 4096, zmsg(OpBinary, string(randomBytes(4096, 1)), 2), []event{binEv(string(randomBytes(4096, 1)))}},
		{"final block inside the message", 0, withB0(0xC1, string(finalBlock("done"))), []event{textEv("done")}},
		{"UTF-8 rune split across fragments", 0, zmsg(OpText, strings.Repeat("héllo wörld ", 50), 9), []event{textEv(strings.Repeat("héllo wörld ", 50))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = 65536
			}
			for _, cuts := range [][]int{nil, everyOffset(len(tt.in))} {
				events, err, r := feedReader(t, &Reader{MaxMessage: max, Deflate: true}, tt.in, cuts)
				if err != nil {
					t.Fatalf("Feed (%d cuts) = %v", len(cuts), err)
				}
				if !equalEvents(events, tt.want) {
					t.Fatalf("(%d cuts) events %v, want %v", len(cuts), events, tt.want)
				}
				if r.Buffered() != 0 {
					t.Fatalf("Buffered() = %d after the messages", r.Buffered())
				}
			}
		})
	}
}

// finalBlock compresses s into a stream that ends with a final (BFINAL)
// block, which RFC 7692 section 7.2.3.4 allows a sender to use.
func finalBlock(s string) []byte {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestSpeed)
	fw.Write([]byte(s))
	fw.Close()
	return z.Bytes()
}

func everyOffset(n int) []int {
	cuts := make([]int, 0, n)
	for i := 1; i < n; i++ {
		cuts = append(cuts, i)
	}
	return cuts
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReaderRSV1WithoutDeflate: a Reader that did not negotiate the
// extension refuses the compressed message a client sends anyway.
func TestReaderRSV1WithoutDeflate(t *testing.T) {
	_, err, _ := feedChunks(t, 65536, zmsg(OpText, "hello", 1), nil)
	if !errors.Is(err, ErrReservedBits) {
		t.Fatalf("Feed = %v, want ErrReservedBits", err)
	}
}

func TestBufDeflated(t *testing.T) {
	t.Run("compressed once, shared, RSV1 set", func(t *testing.T) {
		body := jsonish(2048, 3)
		b := NewBuf(len(body))
		b.B = append(b.B, body...)
		b.Finish(OpText)
		b.Retain(9)
		var wg sync.WaitGroup
		got := make([][]byte, 10)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = b.Deflated(512)
			}()
		}
		wg.Wait()
		for i := range got {
			if &got[i][0] != &got[0][0] {
				t.Fatalf("recipient %d got its own compressed copy", i)
			}
		}
		z := got[0]
		if len(z) >= len(b.Bytes())/2 {
			t.Errorf("compressed frame %d bytes, plain %d: want under half", len(z), len(b.Bytes()))
		}
		fin, op, payload := parseServerFrame(t, clearRSV1(z))
		if !fin || op != OpText || z[0]&0x70 != 0x40 {
			t.Fatalf("first byte %#x, want FIN, RSV1, text", z[0])
		}
		m, ce := inflate(payload, 65536)
		if ce != nil || string(m) != body {
			t.Fatalf("the compressed frame inflates to %d bytes (%v), want the body", len(m), ce)
		}
		putMsg(m)
		for range 10 {
			b.Release()
		}
	})
	t.Run("not worth it", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			op   byte
			body []byte
			min  int
		}{
			{"shorter than the minimum", OpText, []byte(strings.Repeat("a", 511)), 512},
			{"incompressible", OpBinary, randomBytes(4096, 9), 512},
			{"ping", OpPing, []byte(strings.Repeat("a", 100)), 0},
			{"close", OpClose, AppendCloseFrame(nil, 1001, strings.Repeat("a", 100))[2:], 0},
		} {
			b := NewBuf(len(tc.body))
			b.B = append(b.B, tc.body...)
			b.Finish(tc.op)
			if z := b.Deflated(tc.min); z != nil {
				t.Errorf("%s: Deflated returned %d bytes, want nil", tc.name, len(z))
			}
			if z := b.Deflated(tc.min); z != nil {
				t.Errorf("%s: second Deflated returned %d bytes, want nil", tc.name, len(z))
			}
			b.Release()
		}
	})
	t.Run("released with the frame", func(t *testing.T) {
		b := NewBuf(4096)
		b.B = append(b.B, jsonish(4000, 5)...)
		b.Finish(OpBinary)
		b.Deflated(0)
		d := b.deflated.Load()
		if d == nil || d == noDeflate || d.Refs() != 1 {
			t.Fatalf("companion %v", d)
		}
		b.Release()
		if d.Refs() != 0 || b.deflated.Load() != nil {
			t.Fatalf("after the frame's last Release the compressed companion has %d refs", d.Refs())
		}
		// A Buf from the pool starts without a compressed form.
		b2 := NewBuf(4096)
		if b2.deflated.Load() != nil {
			t.Fatalf("a reused Buf kept the compressed form of its previous frame")
		}
		b2.Release()
	})
}

// clearRSV1 returns a copy of a server frame without RSV1, for
// parseServerFrame.
func clearRSV1(f []byte) []byte {
	c := append([]byte(nil), f...)
	c[0] &^= 0x40
	return c
}

// BenchmarkBufDeflated measures compressing one outgoing frame (what the
// first compressed recipient of a fan-out pays) and reusing it (what every
// other recipient pays), for JSON of the sizes peers exchange.
func BenchmarkBufDeflated(b *testing.B) {
	for _, size := range []int{512, 2048, 6144, 65536} {
		body := []byte(jsonish(size, uint64(size)))
		b.Run(fmt.Sprintf("compress/%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf := NewBuf(size)
				buf.B = append(buf.B, body...)
				buf.Finish(OpText)
				if buf.Deflated(512) == nil {
					b.Fatal("not compressed")
				}
				buf.Release()
			}
		})
		b.Run(fmt.Sprintf("shared/%d", size), func(b *testing.B) {
			buf := NewBuf(size)
			buf.B = append(buf.B, body...)
			buf.Finish(OpText)
			buf.Deflated(512)
			b.ReportAllocs()
			for b.Loop() {
				if buf.Deflated(512) == nil {
					b.Fatal("not compressed")
				}
			}
			buf.Release()
		})
	}
}

// BenchmarkReaderInflate measures reading one compressed client message,
// inflated with a pooled decompressor.
func BenchmarkReaderInflate(b *testing.B) {
	for _, size := range []int{512, 2048, 6144, 65536} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			in := zmsg(OpText, jsonish(size, uint64(size)), 1)
			buf := make([]byte, len(in))
			r := &Reader{MaxMessage: 1 << 16, Deflate: true}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(buf, in)
				if err := r.Feed(buf, nopHandler{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nopHandler discards what a Reader delivers.
type nopHandler struct{}

func (nopHandler) OnMessage(byte, []byte) {}
func (nopHandler) OnPing([]byte)          {}
func (nopHandler) OnPong([]byte)          {}
func (nopHandler) OnClose(int, string)    {}
