package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// event is one Handler callback, copied out of the call.
type event struct {
	kind string // "message", "ping", "pong" or "close"
	op   byte   // message opcode
	data string // payload, or close reason
	code int    // close code
}

func (e event) String() string {
	d := e.data
	if len(d) > 40 {
		d = fmt.Sprintf("%q...(%d bytes)", d[:40], len(d))
	} else {
		d = fmt.Sprintf("%q", d)
	}
	switch e.kind {
	case "message":
		return fmt.Sprintf("message(%#x, %s)", e.op, d)
	case "close":
		return fmt.Sprintf("close(%d, %s)", e.code, d)
	}
	return fmt.Sprintf("%s(%s)", e.kind, d)
}

// recorder is a Handler that records every callback.
type recorder struct {
	events []event
	closed bool
}

func (r *recorder) OnMessage(op byte, p []byte) {
	r.events = append(r.events, event{kind: "message", op: op, data: string(p)})
}
func (r *recorder) OnPing(p []byte) {
	r.events = append(r.events, event{kind: "ping", data: string(p)})
}
func (r *recorder) OnPong(p []byte) {
	r.events = append(r.events, event{kind: "pong", data: string(p)})
}
func (r *recorder) OnClose(code int, reason string) {
	r.closed = true
	r.events = append(r.events, event{kind: "close", code: code, data: reason})
}

func textEv(s string) event         { return event{kind: "message", op: OpText, data: s} }
func binEv(s string) event          { return event{kind: "message", op: OpBinary, data: s} }
func pingEv(s string) event         { return event{kind: "ping", data: s} }
func pongEv(s string) event         { return event{kind: "pong", data: s} }
func closeEv(c int, r string) event { return event{kind: "close", code: c, data: r} }

var testKey = [4]byte{0x37, 0xFA, 0x21, 0x3D}

// mf builds a masked client frame.
func mf(fin bool, op byte, payload string) []byte {
	return AppendMaskedFrame(nil, fin, op, testKey, []byte(payload))
}

func text(s string) []byte { return mf(true, OpText, s) }
func bin(s string) []byte  { return mf(true, OpBinary, s) }
func ping(s string) []byte { return mf(true, OpPing, s) }
func pong(s string) []byte { return mf(true, OpPong, s) }

// closeFrame builds a masked close frame with a code and a reason (not truncated).
func closeFrame(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return mf(true, OpClose, string(p)+reason)
}

// withB0 returns a masked frame whose first byte (FIN, RSV, opcode) is b0.
func withB0(b0 byte, payload string) []byte {
	f := mf(true, OpText, payload)
	f[0] = b0
	return f
}

// unmasked returns a FIN frame without the mask bit.
func unmasked(op byte, payload string) []byte {
	return append(AppendFrameHeader(nil, op, len(payload)), payload...)
}

// rawLen builds a masked frame with b0 and an explicit length encoding: code
// is the 7-bit length field (126 or 127 for the extended forms) and ext the
// extended length bytes, whatever payload really follows.
func rawLen(b0, code byte, ext []byte, payload string) []byte {
	f := append([]byte{b0, 0x80 | code}, ext...)
	f = append(f, testKey[:]...)
	start := len(f)
	f = append(f, payload...)
	maskBytes(binary.LittleEndian.Uint32(testKey[:]), f[start:])
	return f
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// fragments builds a fragmented message: op on the first frame, continuations
// after, FIN on the last.
func fragments(op byte, parts ...string) []byte {
	var b []byte
	for i, p := range parts {
		o := OpContinuation
		if i == 0 {
			o = op
		}
		b = append(b, mf(i == len(parts)-1, o, p)...)
	}
	return b
}

func stars(n int) string { return strings.Repeat("*", n) }

type readerCase struct {
	name string
	max  int // MaxMessage; 0 means 65536
	in   []byte
	want []event
	code int // expected close code of the returned error; 0: none
}

func readerCases() []readerCase {
	var cases []readerCase
	add := func(c readerCase) { cases = append(cases, c) }

	// 1.x framing
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
		add(readerCase{name: fmt.Sprintf("1.1.%d text %d bytes", i+1, n), in: text(stars(n)), want: []event{textEv(stars(n))}})
		add(readerCase{name: fmt.Sprintf("1.2.%d binary %d bytes", i+1, n), in: bin(stars(n)), want: []event{binEv(stars(n))}})
	}
	add(readerCase{name: "1.3.1 non-minimal 16-bit length", in: rawLen(0x81, 126, []byte{0, 5}, "hello"), want: []event{textEv("hello")}})
	add(readerCase{name: "1.3.2 non-minimal 64-bit length", in: rawLen(0x82, 127, be64(3), "abc"), want: []event{binEv("abc")}})
	add(readerCase{name: "1.3.3 several frames in one chunk",
		in:   cat(text("a"), bin("bc"), ping("p"), text(""), pong("q"), text("end")),
		want: []event{textEv("a"), binEv("bc"), pingEv("p"), textEv(""), pongEv("q"), textEv("end")}})
	add(readerCase{name: "1.3.4 unmasked text", in: unmasked(OpText, "hello"), code: 1002})
	add(readerCase{name: "1.3.5 unmasked after valid", in: cat(text("ok"), unmasked(OpBinary, "x")), want: []event{textEv("ok")}, code: 1002})
	add(readerCase{name: "1.3.6 unmasked ping", in: unmasked(OpPing, ""), code: 1002})
	add(readerCase{name: "1.3.7 64-bit length with MSB set", in: rawLen(0x82, 127, be64(1<<63|5), "hello"), code: 1002})
	add(readerCase{name: "1.3.8 64-bit length all ones", in: rawLen(0x81, 127, be64(^uint64(0)), ""), code: 1002})
	add(readerCase{name: "1.3.9 masked frame with zero key", in: AppendMaskedFrame(nil, true, OpText, [4]byte{}, []byte("plain")), want: []event{textEv("plain")}})

	// 2.x ping/pong
	add(readerCase{name: "2.1 ping empty", in: ping(""), want: []event{pingEv("")}})
	add(readerCase{name: "2.2 ping text payload", in: ping("Hello, world!"), want: []event{pingEv("Hello, world!")}})
	add(readerCase{name: "2.3 ping binary payload", in: ping("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), want: []event{pingEv("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}})
	add(readerCase{name: "2.4 ping 125 bytes", in: ping(stars(125)), want: []event{pingEv(stars(125))}})
	add(readerCase{name: "2.5 ping 126 bytes", in: ping(stars(126)), code: 1002})
	add(readerCase{name: "2.6 ping with 16-bit length encoding", in: rawLen(0x89, 126, []byte{0, 5}, "hello"), code: 1002})
	add(readerCase{name: "2.7 unsolicited pong empty", in: pong(""), want: []event{pongEv("")}})
	add(readerCase{name: "2.8 unsolicited pong payload", in: pong("unsolicited"), want: []event{pongEv("unsolicited")}})
	add(readerCase{name: "2.9 pong then ping", in: cat(pong("a"), ping("b")), want: []event{pongEv("a"), pingEv("b")}})
	{
		var in []byte
		var want []event
		for i := range 10 {
			in = append(in, ping(fmt.Sprint("ping ", i))...)
			want = append(want, pingEv(fmt.Sprint("ping ", i)))
		}
		add(readerCase{name: "2.10 ten pings", in: in, want: want})
	}
	add(readerCase{name: "2.11 ping 125 bytes with small MaxMessage", max: 10, in: ping(stars(125)), want: []event{pingEv(stars(125))}})

	// 3.x reserved bits
	add(readerCase{name: "3.1 RSV1 text", in: withB0(0x80|0x40|OpText, "hello"), code: 1002})
	add(readerCase{name: "3.2 RSV2 after valid text", in: cat(text("ok"), withB0(0x80|0x20|OpText, "x")), want: []event{textEv("ok")}, code: 1002})
	add(readerCase{name: "3.3 RSV3 between texts", in: cat(text("a"), withB0(0x80|0x10|OpText, "b"), ping("c")), want: []event{textEv("a")}, code: 1002})
	add(readerCase{name: "3.4 RSV1+RSV2 ping", in: withB0(0x80|0x60|OpPing, ""), code: 1002})
	add(readerCase{name: "3.5 RSV1+RSV3 binary", in: withB0(0x80|0x50|OpBinary, "\x00\xff"), code: 1002})
	add(readerCase{name: "3.6 RSV2+RSV3 pong", in: withB0(0x80|0x30|OpPong, ""), code: 1002})
	add(readerCase{name: "3.7 all RSV close", in: withB0(0x80|0x70|OpClose, "\x03\xe8"), code: 1002})
	add(readerCase{name: "3.8 RSV on continuation", in: cat(mf(false, OpText, "a"), withB0(0x80|0x40|OpContinuation, "b")), code: 1002})

	// 4.x opcodes
	for i, op := range []byte{3, 4, 5, 6, 7} {
		add(readerCase{name: fmt.Sprintf("4.1.%d reserved data opcode %d", i+1, op), in: cat(text("ok"), withB0(0x80|op, "x"), ping("p")), want: []event{textEv("ok")}, code: 1002})
	}
	for i, op := range []byte{0xB, 0xC, 0xD, 0xE, 0xF} {
		add(readerCase{name: fmt.Sprintf("4.2.%d reserved control opcode %#x", i+1, op), in: cat(text("ok"), withB0(0x80|op, ""), ping("p")), want: []event{textEv("ok")}, code: 1002})
	}

	// 5.x fragmentation
	add(readerCase{name: "5.1 fragmented ping", in: mf(false, OpPing, "p"), code: 1002})
	add(readerCase{name: "5.2 fragmented pong", in: mf(false, OpPong, "p"), code: 1002})
	add(readerCase{name: "5.3 fragmented close", in: mf(false, OpClose, "\x03\xe8"), code: 1002})
	add(readerCase{name: "5.4 text in 2 fragments", in: fragments(OpText, "fragment1", "fragment2"), want: []event{textEv("fragment1fragment2")}})
	add(readerCase{name: "5.5 binary in 2 fragments", in: fragments(OpBinary, "\x00\x01", "\xfe\xff"), want: []event{binEv("\x00\x01\xfe\xff")}})
	add(readerCase{name: "5.6 text in 2 fragments with ping between",
		in:   cat(mf(false, OpText, "fragment1"), ping("ping"), mf(true, OpContinuation, "fragment2")),
		want: []event{pingEv("ping"), textEv("fragment1fragment2")}})
	add(readerCase{name: "5.7 fragments with pong and ping between",
		in:   cat(mf(false, OpBinary, "a"), pong("x"), mf(false, OpContinuation, "b"), ping("y"), mf(true, OpContinuation, "c"), text("next")),
		want: []event{pongEv("x"), pingEv("y"), binEv("abc"), textEv("next")}})
	add(readerCase{name: "5.8 control frame between 125-byte fragments",
		in:   cat(mf(false, OpText, stars(125)), ping(stars(125)), mf(true, OpContinuation, stars(125))),
		want: []event{pingEv(stars(125)), textEv(stars(250))}})
	add(readerCase{name: "5.9 continuation without message", in: mf(true, OpContinuation, "x"), code: 1002})
	add(readerCase{name: "5.10 non-final continuation without message", in: mf(false, OpContinuation, "x"), code: 1002})
	add(readerCase{name: "5.11 continuation after complete text", in: cat(text("done"), mf(true, OpContinuation, "x")), want: []event{textEv("done")}, code: 1002})
	add(readerCase{name: "5.12 continuation after complete fragmented text",
		in: cat(fragments(OpText, "a", "b"), mf(false, OpContinuation, "c"), text("never")), want: []event{textEv("ab")}, code: 1002})
	add(readerCase{name: "5.13 text inside fragmented text", in: cat(mf(false, OpText, "a"), text("b")), code: 1002})
	add(readerCase{name: "5.14 non-final text inside fragmented text", in: cat(mf(false, OpText, "a"), mf(false, OpText, "b")), code: 1002})
	add(readerCase{name: "5.15 binary inside fragmented text after ping",
		in: cat(mf(false, OpText, "a"), ping("p"), mf(true, OpBinary, "b")), want: []event{pingEv("p")}, code: 1002})
	{
		parts := make([]string, 1000)
		for i := range parts {
			parts[i] = string(rune('a' + i%26))
		}
		add(readerCase{name: "5.16 1000 one-byte fragments", in: fragments(OpText, parts...), want: []event{textEv(strings.Join(parts, ""))}})
	}
	add(readerCase{name: "5.17 empty fragments", in: fragments(OpBinary, "", "", ""), want: []event{binEv("")}})
	add(readerCase{name: "5.18 empty first and last fragments", in: fragments(OpText, "", "middle", ""), want: []event{textEv("middle")}})
	add(readerCase{name: "5.19 fragmented then unfragmented",
		in:   cat(fragments(OpText, "one", "two", "three"), text("four"), fragments(OpBinary, "x", "y")),
		want: []event{textEv("onetwothree"), textEv("four"), binEv("xy")}})
	add(readerCase{name: "5.20 large fragments",
		in: fragments(OpBinary, stars(5000), stars(70), stars(30000)), want: []event{binEv(stars(35070))}})

	// 6.x UTF-8
	const hello = "Hello-µ@ßöäüàá-UTF-8!!"
	const kosme = "κόσμε"
	add(readerCase{name: "6.1.1 empty text", in: text(""), want: []event{textEv("")}})
	add(readerCase{name: "6.1.2 empty text fragments", in: fragments(OpText, "", "", ""), want: []event{textEv("")}})
	add(readerCase{name: "6.2.1 valid UTF-8 in one frame", in: text(hello), want: []event{textEv(hello)}})
	add(readerCase{name: "6.2.2 valid UTF-8 in 2 fragments at a rune boundary", in: fragments(OpText, hello[:7], hello[7:]), want: []event{textEv(hello)}})
	add(readerCase{name: "6.2.3 valid UTF-8, one byte per fragment", in: fragments(OpText, strings.Split(hello, "")...), want: []event{textEv(hello)}})
	add(readerCase{name: "6.2.4 kosme, one byte per fragment", in: fragments(OpText, bytesOf(kosme)...), want: []event{textEv(kosme)}})
	for i, s := range []string{
		kosme,
		"\x00", "\u0080", "\u0800", "\U00010000", // first of each length
		"\x7f", "\u07ff", "\uffff", "\U0010ffff", // last of each length
		"\ud7ff", "\ue000", "\ufffd", "\ufffe", "\U0001fffe", // boundaries, noncharacters
	} {
		add(readerCase{name: fmt.Sprintf("6.3.%d valid %+q", i+1, s), in: text(s), want: []event{textEv(s)}})
	}
	for i, s := range []string{
		"\xf4\x90\x80\x80",             // above U+10FFFF
		"\xf8\x88\x80\x80\x80",         // 5-byte form
		"\xfc\x84\x80\x80\x80\x80",     // 6-byte form
		"\x80", "\xbf", "\x80\xbf\x80", // lone continuation bytes
		"\xc0 ", "\xe0 ", "\xf0 ", // lonely start bytes
		"\xce", "\xe0\xa0", "\xf0\x9d\x84", // incomplete at the end
		"\xfe", "\xff", "\xfe\xfe\xff\xff", // impossible bytes
		"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xc1\xbf", // overlong
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", // surrogates
		kosme + "\xed\xa0\x80edited", // Autobahn 6.3.1
	} {
		add(readerCase{name: fmt.Sprintf("6.4.%d invalid %+q", i+1, s), in: text(s), code: 1007})
		add(readerCase{name: fmt.Sprintf("6.5.%d invalid %+q one byte per fragment", i+1, s), in: fragments(OpText, bytesOf(s)...), code: 1007})
	}
	const clef = "𝄞" // 4 bytes
	for cut := 1; cut < len(clef); cut++ {
		add(readerCase{name: fmt.Sprintf("6.6.%d 4-byte rune split after byte %d", cut, cut),
			in: fragments(OpText, "a"+clef[:cut], clef[cut:]+"b"), want: []event{textEv("a" + clef + "b")}})
	}
	add(readerCase{name: "6.6.4 4-byte rune one byte per fragment with pings",
		in:   cat(mf(false, OpText, clef[:1]), ping("1"), mf(false, OpContinuation, clef[1:2]), ping("2"), mf(false, OpContinuation, clef[2:3]), mf(true, OpContinuation, clef[3:])),
		want: []event{pingEv("1"), pingEv("2"), textEv(clef)}})
	add(readerCase{name: "6.7.1 rune invalid only with its second fragment", in: fragments(OpText, "\xe0", "\x80\x80"), code: 1007})
	add(readerCase{name: "6.7.2 message ends inside a rune", in: fragments(OpText, "ok\xf0\x9d", "\x84"), code: 1007})
	add(readerCase{name: "6.7.3 invalid first fragment stops before ping",
		in: cat(mf(false, OpText, "bad\xff"), ping("never"), mf(true, OpContinuation, "x")), code: 1007})
	add(readerCase{name: "6.7.4 impossible rune start at fragment end stops before ping",
		in: cat(mf(false, OpText, "ok\xf0\x8f"), ping("never"), mf(true, OpContinuation, "\x80\x80")), code: 1007})
	add(readerCase{name: "6.7.5 binary is not checked", in: fragments(OpBinary, "\xff", "\xed\xa0\x80"), want: []event{binEv("\xff\xed\xa0\x80")}})
	add(readerCase{name: "6.7.6 ping payload is not checked", in: ping("\xff\xfe"), want: []event{pingEv("\xff\xfe")}})

	// 7.x close
	add(readerCase{name: "7.1.1 text then close", in: cat(text("Hello World!"), closeFrame(1000, "")), want: []event{textEv("Hello World!"), closeEv(1000, "")}})
	add(readerCase{name: "7.1.2 close twice", in: cat(closeFrame(1000, ""), closeFrame(1001, "")), want: []event{closeEv(1000, "")}})
	add(readerCase{name: "7.1.3 ping after close", in: cat(closeFrame(1000, ""), ping("late")), want: []event{closeEv(1000, "")}})
	add(readerCase{name: "7.1.4 text after close", in: cat(closeFrame(1000, ""), text("late")), want: []event{closeEv(1000, "")}})
	add(readerCase{name: "7.1.5 close inside fragmented text",
		in: cat(mf(false, OpText, "frag1"), closeFrame(1000, ""), mf(true, OpContinuation, "frag2")), want: []event{closeEv(1000, "")}})
	add(readerCase{name: "7.1.6 garbage after close", in: cat(closeFrame(1000, ""), []byte{0xff, 0x00, 0x12}), want: []event{closeEv(1000, "")}})
	add(readerCase{name: "7.3.1 close empty payload", in: mf(true, OpClose, ""), want: []event{closeEv(CloseNoStatus, "")}})
	add(readerCase{name: "7.3.2 close 1-byte payload", in: mf(true, OpClose, "\x03"), code: 1002})
	add(readerCase{name: "7.3.3 close code only", in: closeFrame(1000, ""), want: []event{closeEv(1000, "")}})
	add(readerCase{name: "7.3.4 close code and reason", in: closeFrame(1000, "Hello World!"), want: []event{closeEv(1000, "Hello World!")}})
	add(readerCase{name: "7.3.5 close 123-byte reason", in: closeFrame(1000, stars(123)), want: []event{closeEv(1000, stars(123))}})
	add(readerCase{name: "7.3.6 close 124-byte reason", in: closeFrame(1000, stars(124)), code: 1002})
	add(readerCase{name: "7.5.1 close reason invalid UTF-8", in: closeFrame(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), code: 1007})
	add(readerCase{name: "7.5.2 close reason valid UTF-8", in: closeFrame(1001, kosme), want: []event{closeEv(1001, kosme)}})
	for i, c := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4001, 4999} {
		add(readerCase{name: fmt.Sprintf("7.7.%d close code %d", i+1, c), in: closeFrame(c, ""), want: []event{closeEv(c, "")}})
	}
	for i, c := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		add(readerCase{name: fmt.Sprintf("7.9.%d close code %d", i+1, c), in: closeFrame(c, ""), code: 1002})
	}

	// 9.x sizes
	add(readerCase{name: "9.1.1 text of exactly MaxMessage", max: 1000, in: text(stars(1000)), want: []event{textEv(stars(1000))}})
	add(readerCase{name: "9.1.2 text of MaxMessage+1", max: 1000, in: text(stars(1001)), code: 1009})
	add(readerCase{name: "9.1.3 binary of MaxMessage+1 after valid", max: 1000, in: cat(bin("ok"), bin(stars(1001))), want: []event{binEv("ok")}, code: 1009})
	add(readerCase{name: "9.1.4 7-bit length over MaxMessage", max: 100, in: text(stars(101)), code: 1009})
	add(readerCase{name: "9.1.5 64-bit length over default MaxMessage", in: bin(stars(65537)), code: 1009})
	add(readerCase{name: "9.1.6 lying 64-bit length", in: rawLen(0x82, 127, be64(1<<40), "short"), code: 1009})
	add(readerCase{name: "9.1.7 negative MaxMessage accepts only empty", max: -1, in: cat(text(""), text("x")), want: []event{textEv("")}, code: 1009})
	add(readerCase{name: "9.2.1 fragments summing to MaxMessage", max: 1000, in: fragments(OpText, stars(400), stars(600)), want: []event{textEv(stars(1000))}})
	add(readerCase{name: "9.2.2 fragments summing to MaxMessage+1", max: 1000, in: fragments(OpText, stars(400), stars(600), "x"), code: 1009})
	add(readerCase{name: "9.2.3 fragments over MaxMessage with ping between",
		max: 1000, in: cat(mf(false, OpBinary, stars(1000)), ping("p"), mf(true, OpContinuation, "x")), want: []event{pingEv("p")}, code: 1009})
	add(readerCase{name: "9.2.4 full message then partial-ping sized control",
		max: 1000, in: cat(mf(false, OpBinary, stars(1000)), ping(stars(125)), mf(true, OpContinuation, "")), want: []event{pingEv(stars(125)), binEv(stars(1000))}})
	add(readerCase{name: "9.2.5 lying length on a continuation", max: 1000, in: cat(mf(false, OpBinary, stars(10)), rawLen(0x80, 127, be64(1<<50), "")), code: 1009})
	{
		var in []byte
		var want []event
		for i := range 4 {
			s := strings.Repeat(string(rune('a'+i)), 4096)
			in = append(in, text(s)...)
			want = append(want, textEv(s))
		}
		add(readerCase{name: "9.3.1 several MaxMessage texts", max: 4096, in: in, want: want})
	}
	return cases
}

func bytesOf(s string) []string {
	parts := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		parts[i] = s[i : i+1]
	}
	return parts
}

// feedChunks feeds a fresh copy of in to a new Reader, cut at the offsets in
// cuts (ascending), the way the relay would: it stops after an error or
// OnClose. It checks the Reader's memory bounds after every Feed.
func feedChunks(t testing.TB, maxMsg int, in []byte, cuts []int) ([]event, error, *Reader) {
	t.Helper()
	return feedReader(t, &Reader{MaxMessage: maxMsg}, in, cuts)
}

// feedReader is feedChunks with a Reader the caller configured (Deflate).
// A compressed message is held compressed, so the bound on what the Reader
// buffers is then DeflatedLimit(MaxMessage).
func feedReader(t testing.TB, r *Reader, in []byte, cuts []int) ([]event, error, *Reader) {
	t.Helper()
	data := append([]byte(nil), in...)
	maxMsg := r.MaxMessage
	limit := max(maxMsg, 0)
	if r.Deflate {
		limit = DeflatedLimit(limit)
	}
	h := &recorder{}
	var err error
	prev := 0
	for i := 0; i <= len(cuts) && err == nil && !h.closed; i++ {
		end := len(data)
		if i < len(cuts) {
			end = cuts[i]
		}
		err = r.Feed(data[prev:end], h)
		prev = end
		if b := r.Buffered(); b > limit+maxControlPayload || len(r.ctl) == 0 && b > limit+16 {
			t.Fatalf("Buffered() = %d after %d bytes, over MaxMessage %d + 16 (+ a partial control payload)", b, end, maxMsg)
		}
		if len(r.msg) > limit {
			t.Fatalf("message buffer holds %d bytes, over MaxMessage %d", len(r.msg), maxMsg)
		}
	}
	for _, e := range h.events {
		if e.kind == "message" && len(e.data) > max(maxMsg, 0) {
			t.Fatalf("delivered a message of %d bytes, over MaxMessage %d", len(e.data), maxMsg)
		}
	}
	return h.events, err, r
}

// splitOffsets returns the two-chunk split points tried for an input of n
// bytes: all of them, or for long inputs all near both ends and a sample
// between.
func splitOffsets(n int) []int {
	if n <= 4096 {
		offs := make([]int, n+1)
		for i := range offs {
			offs[i] = i
		}
		return offs
	}
	var offs []int
	for i := 0; i <= n; i++ {
		if i < 300 || i > n-300 || i%509 == 0 {
			offs = append(offs, i)
		}
	}
	return offs
}

func closeCode(err error) int {
	if err == nil {
		return 0
	}
	var ce *CloseError
	if !errors.As(err, &ce) {
		return -1
	}
	return ce.Code
}

// checkRun compares one run with the case's expectations.
func checkRun(t *testing.T, mode string, tc readerCase, events []event, err error, r *Reader) {
	t.Helper()
	if !slices.Equal(events, tc.want) {
		t.Fatalf("%s: events\n got %v\nwant %v", mode, events, tc.want)
	}
	if got := closeCode(err); got != tc.code {
		t.Fatalf("%s: error %v (code %d), want code %d", mode, err, got, tc.code)
	}
	if r.Buffered() != 0 || r.msg != nil || r.ctl != nil {
		t.Fatalf("%s: Reader holds memory at the end: Buffered()=%d msg=%v ctl=%v", mode, r.Buffered(), r.msg != nil, r.ctl != nil)
	}
	if err != nil {
		// The Reader is dead: it keeps returning the same error.
		if err2 := r.Feed(text("more"), &recorder{}); err2 != err {
			t.Fatalf("%s: Feed after error returned %v, want %v", mode, err2, err)
		}
	}
}

func TestReaderCases(t *testing.T) {
	for _, tc := range readerCases() {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 65536
			}
			events, err, r := feedChunks(t, max, tc.in, nil)
			checkRun(t, "whole", tc, events, err, r)

			every := make([]int, 0, len(tc.in))
			for i := 1; i < len(tc.in); i++ {
				every = append(every, i)
			}
			events, err, r = feedChunks(t, max, tc.in, every)
			checkRun(t, "byte by byte", tc, events, err, r)

			for _, off := range splitOffsets(len(tc.in)) {
				events, err, r = feedChunks(t, max, tc.in, []int{off})
				checkRun(t, fmt.Sprintf("split at %d", off), tc, events, err, r)
			}
		})
	}
}

// TestReaderLyingLength checks that a header claiming more than MaxMessage
// fails as soon as its length is known, before any payload is buffered, and
// that a header claiming a large but allowed payload costs memory only as
// bytes arrive.
func TestReaderLyingLength(t *testing.T) {
	t.Run("64-bit length rejected from the header", func(t *testing.T) {
		r := &Reader{MaxMessage: 65536}
		hdr := append([]byte{0x82, 0xFF}, be64(1<<40)...) // no mask key yet
		for i := range hdr[:len(hdr)-1] {
			if err := r.Feed(hdr[i:i+1], &recorder{}); err != nil {
				t.Fatalf("byte %d: early error %v", i, err)
			}
			if r.Buffered() != i+1 {
				t.Fatalf("byte %d: Buffered() = %d", i, r.Buffered())
			}
		}
		err := r.Feed(hdr[len(hdr)-1:], &recorder{})
		if closeCode(err) != CloseTooBig {
			t.Fatalf("err = %v, want close 1009", err)
		}
		if r.Buffered() != 0 {
			t.Fatalf("Buffered() = %d after error", r.Buffered())
		}
	})
	t.Run("lying length with payload bytes", func(t *testing.T) {
		r := &Reader{MaxMessage: 65536}
		in := rawLen(0x81, 127, be64(1<<62), stars(1000))
		if err := r.Feed(in, &recorder{}); closeCode(err) != CloseTooBig {
			t.Fatalf("err = %v, want close 1009", err)
		}
		if r.Buffered() != 0 {
			t.Fatalf("Buffered() = %d after error", r.Buffered())
		}
	})
	t.Run("allowed length trickled", func(t *testing.T) {
		r := &Reader{MaxMessage: 65536}
		in := rawLen(0x82, 127, be64(65536), stars(10))
		if err := r.Feed(in, &recorder{}); err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != 10 {
			t.Fatalf("Buffered() = %d, want 10", r.Buffered())
		}
		if cap(r.msg) > msgSmall {
			t.Fatalf("holds a %d-byte buffer for 10 bytes received", cap(r.msg))
		}
	})
	t.Run("fragment sum", func(t *testing.T) {
		r := &Reader{MaxMessage: 65536}
		if err := r.Feed(mf(false, OpBinary, stars(60000)), &recorder{}); err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != 60000 {
			t.Fatalf("Buffered() = %d, want 60000", r.Buffered())
		}
		// 5536 more fit exactly; 5537 do not.
		hdr := rawLen(0x80, 126, []byte{0x15, 0xA1}, "")[:4] // 5537, key not sent
		if err := r.Feed(hdr, &recorder{}); closeCode(err) != CloseTooBig {
			t.Fatalf("err = %v, want close 1009", err)
		}
		if r.Buffered() != 0 {
			t.Fatalf("Buffered() = %d after error", r.Buffered())
		}
	})
}

// TestReaderUTF8FailFast checks that invalid UTF-8 is reported as soon as it
// is certain, without waiting for the rest of the message.
func TestReaderUTF8FailFast(t *testing.T) {
	tests := []struct {
		name  string
		first []byte // fed alone
		code  int    // expected from the first Feed
	}{
		{"invalid in first fragment", mf(false, OpText, "hello\xc0\xafworld"), 1007},
		{"surrogate in first fragment", mf(false, OpText, "\xed\xa0\x80"), 1007},
		{"impossible second byte at fragment end", mf(false, OpText, "ok\xf0\x8d"), 1007},
		{"invalid in first part of one frame", text("κόσμε\xed\xa0\x80edited" + stars(200))[:20], 1007},
		{"valid prefix split inside a rune", mf(false, OpText, "ok\xf0\x9d"), 0},
		{"valid part of one frame cut inside a rune", text("κόσμε" + stars(200))[:9], 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{MaxMessage: 1 << 16}
			h := &recorder{}
			err := r.Feed(tt.first, h)
			if closeCode(err) != tt.code {
				t.Fatalf("err = %v, want code %d", err, tt.code)
			}
			if len(h.events) != 0 {
				t.Fatalf("events %v", h.events)
			}
		})
	}
	t.Run("rune completed by second fragment", func(t *testing.T) {
		r := &Reader{MaxMessage: 1 << 16}
		h := &recorder{}
		if err := r.Feed(mf(false, OpText, "ok\xf0\x9d"), h); err != nil {
			t.Fatal(err)
		}
		if err := r.Feed(mf(true, OpContinuation, "\x84\x9e!"), h); err != nil {
			t.Fatal(err)
		}
		if want := []event{textEv("ok𝄞!")}; !slices.Equal(h.events, want) {
			t.Fatalf("events %v, want %v", h.events, want)
		}
	})
}

// TestReaderUTF8PrefixExact checks validUTF8Prefix against its definition: a
// prefix is rejected exactly when no continuation can make it valid, and
// otherwise split after its last complete rune.
func TestReaderUTF8PrefixExact(t *testing.T) {
	// Byte values at every boundary of the UTF-8 tables, and a few others.
	edges := []int{0x00, 'x', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
		0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF}
	check := func(p []byte) {
		n, ok := validUTF8Prefix(p)
		if want := extendable(p); ok != want {
			t.Fatalf("validUTF8Prefix(% x) ok=%v, want %v", p, ok, want)
		}
		if ok && (!utf8.Valid(p[:n]) || !extendable(p[n:]) || len(p)-n > 3) {
			t.Fatalf("validUTF8Prefix(% x) = %d: not the last rune boundary", p, n)
		}
	}
	for a := range 256 {
		check([]byte{'a', byte(a)})
		for b := range 256 {
			check([]byte{'a', byte(a), byte(b)})
		}
	}
	for _, a := range edges {
		for _, b := range edges {
			for _, c := range edges {
				check([]byte{'a', byte(a), byte(b), byte(c)})
			}
		}
	}
}

// extendable reports whether some 0-3 more bytes make p valid UTF-8. The
// valid continuation bytes form ranges with these boundaries, so they suffice.
func extendable(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	conts := []byte{0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF}
	q := make([]byte, len(p), len(p)+3)
	copy(q, p)
	for _, x := range conts {
		if utf8.Valid(append(q, x)) {
			return true
		}
		for _, y := range conts {
			if utf8.Valid(append(q, x, y)) {
				return true
			}
			for _, z := range conts {
				if utf8.Valid(append(q, x, y, z)) {
					return true
				}
			}
		}
	}
	return false
}

func TestReaderZeroCopy(t *testing.T) {
	in := cat(text("hello"), bin("world"), ping("ping"))
	offsets := []int{6, 6 + 11, 6 + 11 + 11} // header is 6 bytes, payloads 5, 5, 4
	var got []*byte
	h := &funcHandler{
		msg:  func(_ byte, p []byte) { got = append(got, &p[0]) },
		ping: func(p []byte) { got = append(got, &p[0]) },
	}
	r := &Reader{MaxMessage: 100}
	if err := r.Feed(in, h); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d callbacks", len(got))
	}
	for i, off := range offsets {
		if got[i] != &in[off] {
			t.Errorf("callback %d: payload does not point into the input at %d", i, off)
		}
	}
	if string(in[6:11]) != "hello" {
		t.Errorf("input not unmasked in place: %q", in[6:11])
	}
}

// funcHandler adapts functions to Handler; nil ones ignore their call.
type funcHandler struct {
	msg   func(op byte, p []byte)
	ping  func(p []byte)
	pong  func(p []byte)
	close func(code int, reason string)
}

func (f *funcHandler) OnMessage(op byte, p []byte) {
	if f.msg != nil {
		f.msg(op, p)
	}
}
func (f *funcHandler) OnPing(p []byte) {
	if f.ping != nil {
		f.ping(p)
	}
}
func (f *funcHandler) OnPong(p []byte) {
	if f.pong != nil {
		f.pong(p)
	}
}
func (f *funcHandler) OnClose(code int, reason string) {
	if f.close != nil {
		f.close(code, reason)
	}
}

func TestReaderBuffers(t *testing.T) {
	r := &Reader{MaxMessage: 1 << 20}
	h := &recorder{}
	steps := []struct {
		in       []byte
		buffered int
		held     bool // a message buffer is held
		ctl      bool // a control buffer is held
	}{
		{text("whole"), 0, false, false},
		{text("partial")[:8], 2, true, false}, // header (6) + 2 payload bytes
		{text("partial")[8:], 0, false, false},
		{mf(false, OpText, stars(100)), 100, true, false},
		{ping("p")[:3], 100 + 3, true, false}, // partial ping header inside the message
		{ping("p")[3:], 100, true, false},
		{ping(stars(50))[:20], 100 + 14, true, true}, // partial ping payload inside the message
		{ping(stars(50))[20:], 100, true, false},
		{mf(true, OpContinuation, stars(100000)), 0, false, false}, // grows into the large class
		{mf(false, OpBinary, stars(10)), 10, true, false},
	}
	for i, s := range steps {
		if err := r.Feed(s.in, h); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if r.Buffered() != s.buffered || (r.msg != nil) != s.held || (r.ctl != nil) != s.ctl {
			t.Fatalf("step %d: Buffered() = %d, buffers held %v, %v; want %d, %v, %v",
				i, r.Buffered(), r.msg != nil, r.ctl != nil, s.buffered, s.held, s.ctl)
		}
	}
	want := []event{textEv("whole"), textEv("partial"), pingEv("p"), pingEv(stars(50)), textEv(stars(100100))}
	if !slices.Equal(h.events, want) {
		t.Fatalf("events %v, want %v", h.events, want)
	}

	r.Reset()
	if r.Buffered() != 0 || r.msg != nil || r.MaxMessage != 1<<20 {
		t.Fatalf("after Reset: Buffered() = %d, held %v, MaxMessage %d", r.Buffered(), r.msg != nil, r.MaxMessage)
	}
	// The fragmented message is gone: a continuation is now a violation,
	// and a new message is fine.
	if err := r.Feed(text("fresh"), h); err != nil {
		t.Fatal(err)
	}
	if err := r.Feed(mf(true, OpContinuation, "x"), h); closeCode(err) != CloseProtocolError {
		t.Fatalf("continuation after Reset: %v, want close 1002", err)
	}
}

func TestReaderAfterClose(t *testing.T) {
	r := &Reader{MaxMessage: 100}
	h := &recorder{}
	if err := r.Feed(cat(closeFrame(1000, "bye"), text("late")), h); err != nil {
		t.Fatal(err)
	}
	if err := r.Feed(text("later"), h); err != nil {
		t.Fatalf("Feed after close: %v", err)
	}
	if want := []event{closeEv(1000, "bye")}; !slices.Equal(h.events, want) {
		t.Fatalf("events %v, want %v", h.events, want)
	}
}

func BenchmarkReaderFeed(b *testing.B) {
	// A zero masking key leaves the input unchanged when Feed unmasks it, so
	// the same bytes are fed every iteration; the XOR work is the same.
	var zero [4]byte
	small := bytes.Repeat([]byte(`{"type":"publish","room":"lobby","data":{"n":1}}`), 1)
	var batch []byte
	for range 16 {
		batch = AppendMaskedFrame(batch, true, OpText, zero, small)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	whole := AppendMaskedFrame(nil, true, OpBinary, zero, big)
	var frags []byte
	for i := range 4 {
		op := OpContinuation
		if i == 0 {
			op = OpText
		}
		frags = AppendMaskedFrame(frags, i == 3, op, zero, big[i*16384:(i+1)*16384])
	}

	benches := []struct {
		name  string
		in    []byte
		chunk int // feed in chunks of this size; 0: whole
	}{
		{"16-small-texts", batch, 0},
		{"64KiB-binary", whole, 0},
		{"64KiB-text", AppendMaskedFrame(nil, true, OpText, zero, big), 0},
		{"64KiB-text-1500B-chunks", AppendMaskedFrame(nil, true, OpText, zero, big), 1500},
		{"64KiB-text-4-fragments", frags, 0},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			r := &Reader{MaxMessage: 1 << 16}
			h := &funcHandler{}
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				if bb.chunk == 0 {
					if err := r.Feed(bb.in, h); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for p := bb.in; len(p) > 0; {
					n := min(bb.chunk, len(p))
					if err := r.Feed(p[:n], h); err != nil {
						b.Fatal(err)
					}
					p = p[n:]
				}
			}
		})
	}
}
