package frame

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzMaxMessage is small so that the fuzzer reaches the size limit, the
// 16-bit length form and fragments that sum over the limit.
const fuzzMaxMessage = 300

// FuzzReader feeds arbitrary bytes to a Reader whole, in two chunks cut at
// split, and one byte at a time, and checks that the three agree with each
// other and with refDecode, a plain decoder of the whole input, on the
// callbacks and the error; and that the Reader's memory stays bounded. A
// Reader stopped between callbacks and resumed (Stop, Resume) must agree too.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, split uint) {
		cut := int(split % uint(len(data)+1))

		wantEv, wantCode, wantReason := refDecode(data, fuzzMaxMessage)

		runs := []struct {
			name string
			cuts []int
		}{{"whole", nil}, {"split", []int{cut}}}
		if len(data) <= 512 {
			every := make([]int, 0, len(data))
			for i := 1; i < len(data); i++ {
				every = append(every, i)
			}
			runs = append(runs, struct {
				name string
				cuts []int
			}{"bytewise", every})
		}
		for _, run := range runs {
			events, err, r := feedChunks(t, fuzzMaxMessage, data, run.cuts)
			if !slices.Equal(events, wantEv) {
				t.Fatalf("%s: events\n got %v\nwant %v", run.name, events, wantEv)
			}
			code, reason := 0, ""
			if err != nil {
				var ce *CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: error %T %v is not a *CloseError", run.name, err, err)
				}
				code, reason = ce.Code, ce.Reason
			}
			if code != wantCode || reason != wantReason {
				t.Fatalf("%s: error %d %q, want %d %q", run.name, code, reason, wantCode, wantReason)
			}
			for _, e := range events {
				checkEvent(t, e)
			}
			idle := !r.inBody && r.msgOp == 0
			if (err != nil || r.closed || idle) && (r.msg != nil || r.ctl != nil) {
				t.Fatalf("%s: idle Reader holds buffers: msg %v ctl %v", run.name, r.msg != nil, r.ctl != nil)
			}
			if (err != nil || r.closed) && r.Buffered() != 0 {
				t.Fatalf("%s: Buffered() = %d after the end", run.name, r.Buffered())
			}
		}

		// Stopping between callbacks and resuming changes nothing either.
		events, err, _ := feedStopping(t, fuzzMaxMessage, data, cut, int(split%3)+1)
		if !slices.Equal(events, wantEv) {
			t.Fatalf("stopping: events\n got %v\nwant %v", events, wantEv)
		}
		if c := closeCode(err); c != wantCode {
			t.Fatalf("stopping: close code %d, want %d", c, wantCode)
		}
	})
}

// checkEvent checks what any callback must satisfy.
func checkEvent(t *testing.T, e event) {
	t.Helper()
	switch e.kind {
	case "message":
		if e.op != OpText && e.op != OpBinary {
			t.Fatalf("message with opcode %#x", e.op)
		}
		if len(e.data) > fuzzMaxMessage {
			t.Fatalf("message of %d bytes", len(e.data))
		}
		if e.op == OpText && !utf8.ValidString(e.data) {
			t.Fatalf("text message is not valid UTF-8: %q", e.data)
		}
	case "ping", "pong":
		if len(e.data) > maxControlPayload {
			t.Fatalf("%s of %d bytes", e.kind, len(e.data))
		}
	case "close":
		if e.code != CloseNoStatus && !ValidCloseCode(e.code) || !utf8.ValidString(e.data) {
			t.Fatalf("close %d %q", e.code, e.data)
		}
	}
}

// refDecode is a plain decoder of a complete input, written from RFC 6455
// without the Reader's incremental state: it walks the frames of data, checks
// each header field in wire order as far as data goes, and stops at the end of
// data, at the first violation, or after a close. Like the Reader it reports
// invalid UTF-8 as soon as a prefix of a text message cannot be completed
// (judged by extendable), including the prefix in a truncated last frame.
func refDecode(data []byte, maxMsg int) (events []event, code int, reason string) {
	var (
		msgOp byte
		msg   []byte
	)
	fail := func(c int, r string) ([]event, int, string) { return events, c, r }
	for i := 0; i < len(data); {
		b0 := data[i]
		fin, op := b0&0x80 != 0, b0&0x0F
		if b0&0x70 != 0 {
			return fail(1002, "reserved bits set")
		}
		switch {
		case op == OpText || op == OpBinary:
			if msgOp != 0 {
				return fail(1002, "new message inside a fragmented message")
			}
		case op == OpContinuation:
			if msgOp == 0 {
				return fail(1002, "continuation frame without a message")
			}
		case op == OpClose || op == OpPing || op == OpPong:
			if !fin {
				return fail(1002, "fragmented control frame")
			}
		default:
			return fail(1002, "unknown opcode")
		}
		if i+1 >= len(data) {
			break
		}
		b1 := data[i+1]
		if b1&0x80 == 0 {
			return fail(1002, "unmasked client frame")
		}
		control := op >= 8
		length := uint64(b1 & 0x7F)
		pos := i + 2
		if control && length > 125 {
			return fail(1002, "control frame payload over 125 bytes")
		}
		switch length {
		case 126:
			if pos+2 > len(data) {
				return events, 0, ""
			}
			length = uint64(binary.BigEndian.Uint16(data[pos:]))
			pos += 2
		case 127:
			if pos+8 > len(data) {
				return events, 0, ""
			}
			length = binary.BigEndian.Uint64(data[pos:])
			pos += 8
			if length >= 1<<63 {
				return fail(1002, "payload length with the most significant bit set")
			}
		}
		if !control && length > uint64(maxMsg-len(msg)) {
			return fail(1009, "message too big")
		}
		if pos+4 > len(data) {
			break
		}
		key := data[pos : pos+4]
		pos += 4
		end := min(pos+int(length), len(data))
		payload := make([]byte, end-pos)
		for j := range payload {
			payload[j] = data[pos+j] ^ key[j%4]
		}
		complete := pos+int(length) <= len(data)
		i = end

		if control {
			if !complete {
				break
			}
			switch op {
			case OpPing:
				events = append(events, event{kind: "ping", data: string(payload)})
			case OpPong:
				events = append(events, event{kind: "pong", data: string(payload)})
			case OpClose:
				switch {
				case len(payload) == 0:
					events = append(events, event{kind: "close", code: 1005})
				case len(payload) == 1:
					return fail(1002, "close payload of 1 byte")
				default:
					c := int(binary.BigEndian.Uint16(payload))
					if !ValidCloseCode(c) {
						return fail(1002, "invalid close code")
					}
					if !utf8.Valid(payload[2:]) {
						return fail(1007, "invalid UTF-8 in close reason")
					}
					events = append(events, event{kind: "close", code: c, data: string(payload[2:])})
				}
				return events, 0, ""
			}
			continue
		}

		if op != OpContinuation {
			msgOp = op
		}
		msg = append(msg, payload...)
		if msgOp == OpText && !extendable(msg) {
			return fail(1007, "invalid UTF-8 in text message")
		}
		if !complete || !fin {
			continue
		}
		if msgOp == OpText && !utf8.Valid(msg) {
			return fail(1007, "invalid UTF-8 in text message")
		}
		events = append(events, event{kind: "message", op: msgOp, data: string(msg)})
		msgOp, msg = 0, nil
	}
	return events, 0, ""
}
