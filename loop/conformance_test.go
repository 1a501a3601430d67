package loop_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// RFC 6455 conformance of the /echo endpoint, end to end through a real
// server, with raw frames. Cases follow the numbering of the Autobahn
// TestSuite's fuzzingclient cases (1.x framing, 2.x ping/pong, 3.x reserved
// bits, 4.x opcodes, 5.x fragmentation, 6.x UTF-8, 7.x close handshake,
// 9.x sizes), so a case name here is the Autobahn case it reproduces.
// Compression (12.x, 13.x) is not offered by wsrelay and has no cases.

// step is one action of a conformance case: bytes to send (each element of
// send is written separately, with a pause, so the server reads them apart),
// or a frame the server must send next, or the close code it must send
// (then the socket must be closed), or a pause.
type step struct {
	send  [][]byte
	op    byte   // expect a frame with this opcode...
	data  []byte // ...and payload
	close int    // expect a close frame with this code (1005: empty payload)
	quiet bool   // expect nothing for a short while
}

func sendS(parts ...[]byte) step    { return step{send: parts} }
func expect(op byte, p []byte) step { return step{op: op, data: p} }
func expectClose(code int) step     { return step{close: code} }
func expectQuiet() step             { return step{quiet: true} }

var mask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// fr is a masked client frame.
func fr(fin bool, op byte, p []byte) []byte { return frame.AppendMaskedFrame(nil, fin, op, mask, p) }

// rsvFrame is a masked frame with reserved bits rsv (1-7) set.
func rsvFrame(rsv byte, op byte, p []byte) []byte {
	f := fr(true, op, p)
	f[0] |= rsv << 4
	return f
}

// chunks splits b into pieces of n bytes.
func chunks(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// fragments frames a message of op in fragments of n payload bytes.
func fragments(op byte, p []byte, n int) []byte {
	var out []byte
	parts := chunks(p, n)
	for i, part := range parts {
		o := op
		if i > 0 {
			o = frame.OpContinuation
		}
		out = append(out, fr(i == len(parts)-1, o, part)...)
	}
	return out
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func repeat(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

type confCase struct {
	id    string
	steps []step
}

func runConformance(t *testing.T, ts *relaytest.Server, cases []confCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			rc := relaytest.RawDial(t, ts.Addr().String(), "/echo")
			defer rc.Close()
			for i, s := range tc.steps {
				switch {
				case s.send != nil:
					for j, part := range s.send {
						if j > 0 {
							time.Sleep(time.Millisecond)
						}
						if _, err := rc.Write(part); err != nil {
							// The server may close as soon as it sees a
							// violation: what it sent is checked next.
							break
						}
					}
				case s.quiet:
					if op, p, err := rc.ReadFrame(100 * time.Millisecond); err == nil {
						t.Fatalf("step %d: unexpected frame op %d payload %q", i, op, trunc(p))
					}
				case s.close != 0:
					op, p, err := rc.ReadFrame(5 * time.Second)
					if err != nil {
						t.Fatalf("step %d: want close %d, got %v", i, s.close, err)
					}
					if op != frame.OpClose {
						t.Fatalf("step %d: want close %d, got op %d payload %q", i, s.close, op, trunc(p))
					}
					code := 1005
					if len(p) >= 2 {
						code = int(binary.BigEndian.Uint16(p))
					}
					if code != s.close {
						t.Fatalf("step %d: close code %d (%q), want %d", i, code, p[min(2, len(p)):], s.close)
					}
					if !closedWithin(rc, 3*time.Second) {
						t.Fatalf("step %d: socket open after the close frame", i)
					}
				default:
					op, p, err := rc.ReadFrame(5 * time.Second)
					if err != nil {
						t.Fatalf("step %d: want op %d, got %v", i, s.op, err)
					}
					if op != s.op || !bytes.Equal(p, s.data) {
						t.Fatalf("step %d: got op %d payload %q (%d bytes), want op %d payload %q (%d bytes)",
							i, op, trunc(p), len(p), s.op, trunc(s.data), len(s.data))
					}
				}
			}
		})
	}
}

func trunc(p []byte) []byte {
	if len(p) > 40 {
		return p[:40]
	}
	return p
}

const (
	opT, opB, opC, opP, opG = frame.OpText, frame.OpBinary, frame.OpClose, frame.OpPing, frame.OpPong
	opX                     = frame.OpContinuation
)

// echoCase: send one message (as given frames), expect it echoed, then
// close normally.
func echoCase(id string, op byte, msg []byte, wire ...[]byte) confCase {
	return confCase{id, []step{sendS(wire...), expect(op, msg), sendS(fr(true, opC, closePayload(1000, ""))), expectClose(1000)}}
}

// failCase: send wire, expect the close code.
func failCase(id string, code int, wire ...[]byte) confCase {
	return confCase{id, []step{sendS(wire...), expectClose(code)}}
}

func TestConformance(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_ECHO=true", "WSRELAY_RATE_MSGS=0")
	var cases []confCase

	// 1.x framing: text (1.1) and binary (1.2) of the boundary lengths.
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
		cases = append(cases,
			echoCase(fmt.Sprintf("1.1.%d", i+1), opT, repeat('*', n), fr(true, opT, repeat('*', n))),
			echoCase(fmt.Sprintf("1.2.%d", i+1), opB, repeat(0xfe, n), fr(true, opB, repeat(0xfe, n))))
	}
	cases = append(cases,
		echoCase("1.1.8", opT, repeat('*', 65536), chunks(fr(true, opT, repeat('*', 65536)), 997)...),
		echoCase("1.2.8", opB, repeat(0xfe, 65536), chunks(fr(true, opB, repeat(0xfe, 65536)), 997)...))

	// 2.x ping/pong.
	cases = append(cases,
		confCase{"2.1", []step{sendS(fr(true, opP, nil)), expect(opG, []byte{})}},
		confCase{"2.2", []step{sendS(fr(true, opP, []byte("Hello, world!"))), expect(opG, []byte("Hello, world!"))}},
		confCase{"2.3", []step{sendS(fr(true, opP, []byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})), expect(opG, []byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})}},
		confCase{"2.4", []step{sendS(fr(true, opP, repeat(0xfe, 125))), expect(opG, repeat(0xfe, 125))}},
		failCase("2.5", 1002, fr(true, opP, repeat(0xfe, 126))),
		confCase{"2.6", []step{sendS(chunks(fr(true, opP, repeat(0xfe, 125)), 1)...), expect(opG, repeat(0xfe, 125))}},
		confCase{"2.7", []step{sendS(fr(true, opG, nil)), expectQuiet()}},
		confCase{"2.8", []step{sendS(fr(true, opG, []byte("unsolicited pong payload"))), expectQuiet()}},
		confCase{"2.9", []step{sendS(fr(true, opG, []byte("unsolicited pong payload")), fr(true, opP, []byte("ping payload"))), expect(opG, []byte("ping payload"))}},
	)
	var tenPings []byte
	var tenPongs []step
	for i := range 10 {
		p := []byte(fmt.Sprintf("payload-%d", i))
		tenPings = append(tenPings, fr(true, opP, p)...)
		tenPongs = append(tenPongs, expect(opG, p))
	}
	cases = append(cases,
		confCase{"2.10", append([]step{sendS(tenPings)}, tenPongs...)},
		confCase{"2.11", append([]step{sendS(chunks(tenPings, 1)...)}, tenPongs...)})

	// 3.x reserved bits: what came before is still echoed, then 1002.
	hello := []byte("Hello, world!")
	cases = append(cases,
		failCase("3.1", 1002, rsvFrame(1, opT, hello)),
		confCase{"3.2", []step{sendS(fr(true, opT, hello), rsvFrame(2, opT, hello), fr(true, opP, hello)), expect(opT, hello), expectClose(1002)}},
		confCase{"3.3", []step{sendS(fr(true, opT, hello)), expect(opT, hello), sendS(rsvFrame(3, opT, hello)), expectClose(1002)}},
		confCase{"3.4", []step{sendS(chunks(append(fr(true, opT, hello), append(rsvFrame(4, opT, hello), fr(true, opP, hello)...)...), 1)...), expect(opT, hello), expectClose(1002)}},
		failCase("3.5", 1002, rsvFrame(5, opB, repeat(0xff, 8))),
		failCase("3.6", 1002, rsvFrame(6, opP, hello)),
		failCase("3.7", 1002, rsvFrame(7, opC, closePayload(1000, ""))),
	)

	// 4.x opcodes: reserved non-control (3-7) and control (11-15) opcodes.
	for i, op := range []byte{3, 4, 5, 6, 7} {
		cases = append(cases, failCase(fmt.Sprintf("4.1.%d", i+1), 1002, fr(true, op, []byte("reserved"))))
	}
	for i, op := range []byte{11, 12, 13, 14, 15} {
		cases = append(cases, failCase(fmt.Sprintf("4.2.%d", i+1), 1002, fr(true, op, []byte("reserved"))))
	}
	cases = append(cases, confCase{"4.1.3+", []step{sendS(fr(true, opT, hello), fr(true, 5, nil), fr(true, opP, hello)), expect(opT, hello), expectClose(1002)}})

	// 5.x fragmentation.
	frag1, frag2 := []byte("fragment1"), []byte("fragment2")
	both := []byte("fragment1fragment2")
	cases = append(cases,
		failCase("5.1", 1002, fr(false, opP, frag1), fr(true, opX, frag2)),
		failCase("5.2", 1002, fr(false, opG, frag1), fr(true, opX, frag2)),
		echoCase("5.3", opT, both, fr(false, opT, frag1), fr(true, opX, frag2)),
		echoCase("5.4", opT, both, chunks(append(fr(false, opT, frag1), fr(true, opX, frag2)...), 1)...),
		echoCase("5.5", opT, both, append(fr(false, opT, frag1), fr(true, opX, frag2)...)),
		confCase{"5.6", []step{sendS(fr(false, opT, frag1), fr(true, opP, []byte("ping")), fr(true, opX, frag2)), expect(opG, []byte("ping")), expect(opT, both)}},
		confCase{"5.7", []step{sendS(chunks(append(fr(false, opT, frag1), append(fr(true, opP, []byte("ping")), fr(true, opX, frag2)...)...), 1)...), expect(opG, []byte("ping")), expect(opT, both)}},
		echoCase("5.8", opB, both, fr(false, opB, frag1), fr(true, opX, frag2)),
		failCase("5.9", 1002, fr(false, opX, frag1), fr(true, opT, frag2)),
		failCase("5.10", 1002, chunks(append(fr(false, opX, frag1), fr(true, opT, frag2)...), 1)...),
		failCase("5.12", 1002, fr(true, opX, frag1)),
		confCase{"5.15", []step{sendS(fr(false, opT, frag1), fr(true, opX, frag2), fr(false, opX, frag1), fr(true, opT, frag2)), expect(opT, both), expectClose(1002)}},
		failCase("5.17", 1002, fr(true, opX, frag1), fr(false, opT, frag1), fr(true, opX, frag2)),
		failCase("5.18", 1002, fr(false, opT, frag1), fr(true, opT, frag2)),
	)
	var interleaved []byte
	var pongs []step
	for i := range 5 {
		op := byte(opT)
		if i > 0 {
			op = opX
		}
		interleaved = append(interleaved, fr(i == 4, op, []byte(fmt.Sprintf("frag%d ", i)))...)
		interleaved = append(interleaved, fr(true, opP, []byte(fmt.Sprintf("ping%d", i)))...)
		pongs = append(pongs, expect(opG, []byte(fmt.Sprintf("ping%d", i))))
	}
	// The last ping follows the final fragment: the message comes first.
	steps := append([]step{sendS(chunks(interleaved, 7)...)}, pongs[:4]...)
	steps = append(steps, expect(opT, []byte("frag0 frag1 frag2 frag3 frag4 ")), pongs[4])
	cases = append(cases, confCase{"5.19", steps})

	// 6.x UTF-8: empty, valid whole and fragmented at every byte, invalid
	// (closed with 1007, as soon as a fragment makes it invalid).
	greek := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")
	mixed := []byte("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!")
	cases = append(cases,
		echoCase("6.1.1", opT, []byte{}, fr(true, opT, nil)),
		echoCase("6.1.2", opT, []byte{}, fr(false, opT, nil), fr(false, opX, nil), fr(true, opX, nil)),
		echoCase("6.1.3", opT, []byte("middle"), fr(false, opT, nil), fr(false, opX, []byte("middle")), fr(true, opX, nil)),
		echoCase("6.2.1", opT, mixed, fr(true, opT, mixed)),
		echoCase("6.2.2", opT, mixed, fr(false, opT, mixed[:7]), fr(true, opX, mixed[7:])),
		echoCase("6.2.3", opT, mixed, chunks(fr(true, opT, mixed), 1)...),
		echoCase("6.2.4", opT, greek, chunks(fragments(opT, greek, 1), 1)...),
		echoCase("6.3.1", opT, greek, fr(true, opT, greek)),
		failCase("6.3.2", 1007, fragments(opT, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), 1)),
		echoCase("6.5.1", opT, []byte("\xf0\x90\x80\x80"), fr(true, opT, []byte("\xf0\x90\x80\x80"))),
		echoCase("6.5.2", opT, []byte("\xf0\x90\x80\x80"), fragments(opT, []byte("\xf0\x90\x80\x80"), 1)),
		echoCase("6.5.5", opT, []byte("\xf4\x8f\xbf\xbf"), fr(true, opT, []byte("\xf4\x8f\xbf\xbf"))),
		failCase("6.6.1", 1007, fr(true, opT, []byte{0xce})),
		failCase("6.6.3", 1007, fr(true, opT, []byte("\xce\xba\xe1"))),
		failCase("6.8.1", 1007, fr(true, opT, []byte("\xf8\x88\x80\x80\x80"))),
		failCase("6.9.1", 1007, fr(true, opT, []byte("\xc0\xaf"))),
		failCase("6.9.2", 1007, fr(true, opT, []byte("\xe0\x80\xaf"))),
		failCase("6.9.3", 1007, fr(true, opT, []byte("\xf0\x80\x80\xaf"))),
		failCase("6.10.1", 1007, fr(true, opT, []byte("\xc1\xbf"))),
		failCase("6.11.1", 1007, fr(true, opT, []byte("\xed\xa0\x80"))),
		failCase("6.11.2", 1007, fr(true, opT, []byte("\xed\xbf\xbf"))),
		failCase("6.12.1", 1007, fr(true, opT, []byte("\x80"))),
		failCase("6.13.1", 1007, fr(true, opT, []byte("\xc0 \xc1 \xc2 "))),
		failCase("6.14.1", 1007, fr(true, opT, []byte("\xf4\x90\x80\x80"))),
		failCase("6.20.1", 1007, fr(true, opT, []byte("\xed\xa0\x80\xed\xb0\x80"))),
		echoCase("6.21.1", opT, []byte("\xef\xbf\xbe"), fr(true, opT, []byte("\xef\xbf\xbe"))), // noncharacter, valid UTF-8
		// 6.4.x fail fast: the invalid fragment is refused before the
		// message is complete.
		confCase{"6.4.1", []step{sendS(fr(false, opT, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")), fr(false, opX, []byte("\xf4\x90\x80\x80"))), expectClose(1007)}},
		confCase{"6.4.2", []step{sendS(fr(false, opT, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4"))), expectQuiet(), sendS(fr(false, opX, []byte("\x90"))), expectClose(1007)}},
		confCase{"6.4.3", []step{sendS(fr(true, opT, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64"))[:20]), expectClose(1007)}},
		confCase{"6.4.4", []step{sendS(fr(false, opT, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90"))), expectClose(1007)}},
	)

	// 7.x close handshake.
	cases = append(cases,
		confCase{"7.1.1", []step{sendS(fr(true, opT, hello)), expect(opT, hello), sendS(fr(true, opC, closePayload(1000, ""))), expectClose(1000)}},
		confCase{"7.1.2", []step{sendS(fr(true, opC, closePayload(1000, "")), fr(true, opC, closePayload(1000, ""))), expectClose(1000)}},
		confCase{"7.1.3", []step{sendS(append(fr(true, opC, closePayload(1000, "")), fr(true, opP, hello)...)), expectClose(1000)}},
		confCase{"7.1.4", []step{sendS(append(fr(true, opC, closePayload(1000, "")), fr(true, opT, hello)...)), expectClose(1000)}},
		confCase{"7.1.5", []step{sendS(fr(false, opT, frag1), fr(true, opC, closePayload(1000, "")), fr(true, opX, frag2)), expectClose(1000)}},
		confCase{"7.1.6", []step{sendS(append(fr(true, opT, repeat('B', 65536)), append(fr(true, opC, closePayload(1000, "")), fr(true, opP, hello)...)...)), expect(opT, repeat('B', 65536)), expectClose(1000)}},
		confCase{"7.3.1", []step{sendS(fr(true, opC, nil)), expectClose(1005)}},
		failCase("7.3.2", 1002, fr(true, opC, []byte{0x03})),
		confCase{"7.3.3", []step{sendS(fr(true, opC, closePayload(1000, ""))), expectClose(1000)}},
		confCase{"7.3.4", []step{sendS(fr(true, opC, closePayload(1000, "Hello World!"))), expectClose(1000)}},
		confCase{"7.3.5", []step{sendS(fr(true, opC, closePayload(1000, strings.Repeat("*", 123)))), expectClose(1000)}},
		failCase("7.3.6", 1002, fr(true, opC, closePayload(1000, strings.Repeat("*", 124)))),
		failCase("7.5.1", 1007, fr(true, opC, closePayload(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"))),
	)
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999, 1012, 1013, 1014} {
		cases = append(cases, confCase{fmt.Sprintf("7.7.%d", i+1), []step{sendS(fr(true, opC, closePayload(code, ""))), expectClose(code)}})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, failCase(fmt.Sprintf("7.9.%d", i+1), 1002, fr(true, opC, closePayload(code, ""))))
	}
	runConformance(t, ts, cases)
}

// TestConformanceSizes is Autobahn's 9.x with MAX_MESSAGE_BYTES raised to
// 1 MiB, plus the limit itself. Autobahn's 9.3-9.6 use a 4 MiB message;
// here it is 256 KiB (the same fragment and chunk sizes), which keeps the
// test quick under the race detector and exercises the same code.
func TestConformanceSizes(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_ECHO=true", "WSRELAY_RATE_MSGS=0", "WSRELAY_MAX_MESSAGE_BYTES=1048576")
	mb := 1 << 20
	text := repeat('*', mb/4)
	bin := repeat(0xfe, mb/4)
	var cases []confCase
	for i, n := range []int{64 << 10, 256 << 10, mb} {
		cases = append(cases,
			echoCase(fmt.Sprintf("9.1.%d", i+1), opT, repeat('*', n), fr(true, opT, repeat('*', n))),
			echoCase(fmt.Sprintf("9.2.%d", i+1), opB, repeat(0xfe, n), fr(true, opB, repeat(0xfe, n))))
	}
	for i, n := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10} {
		cases = append(cases,
			echoCase(fmt.Sprintf("9.3.%d", i+1), opT, text, fragments(opT, text, n)),
			echoCase(fmt.Sprintf("9.4.%d", i+1), opB, bin, fragments(opB, bin, n)))
	}
	for i, n := range []int{64, 128, 256, 512, 1024, 2048} {
		cases = append(cases,
			echoCase(fmt.Sprintf("9.5.%d", i+1), opT, text, chunks(fr(true, opT, text), n*64)...),
			echoCase(fmt.Sprintf("9.6.%d", i+1), opB, bin, chunks(fr(true, opB, bin), n*64)...))
	}
	// 9.7 and 9.8: many small messages, each echoed, in order.
	for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
		for _, op := range []byte{opT, opB} {
			var wire []byte
			var want []step
			for j := range 200 {
				p := repeat(byte('a'+j%26), n)
				wire = append(wire, fr(true, op, p)...)
				want = append(want, expect(op, p))
			}
			group := "9.7"
			if op == opB {
				group = "9.8"
			}
			cases = append(cases, confCase{fmt.Sprintf("%s.%d", group, i+1), append([]step{sendS(wire)}, want...)})
		}
	}
	// The limit: exactly MAX_MESSAGE_BYTES is echoed, one byte more (whole
	// or across fragments) closes with 1009.
	cases = append(cases,
		echoCase("9.limit.1", opB, repeat(1, mb), fragments(opB, repeat(1, mb), mb/4)),
		failCase("9.limit.2", 1009, fr(true, opB, repeat(1, mb+1))[:64<<10]),
		failCase("9.limit.3", 1009, fragments(opB, repeat(1, mb+1), mb/4)))
	runConformance(t, ts, cases)
}
