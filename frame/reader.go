package frame

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"
)

// Handler receives what a Reader decodes. payload is valid only during the
// call: it may point into the input given to Feed or into the Reader's pooled
// buffer, which is reused as soon as the call returns. A Handler must not call
// Feed or Reset on the Reader that calls it.
type Handler interface {
	// OnMessage receives a complete data message, op OpText or OpBinary,
	// reassembled if it was fragmented. payload may be empty. A text payload
	// is valid UTF-8.
	OnMessage(op byte, payload []byte)
	// OnPing receives the payload (at most 125 bytes) of a ping.
	OnPing(payload []byte)
	// OnPong receives the payload (at most 125 bytes) of a pong.
	OnPong(payload []byte)
	// OnClose reports that the peer sent a close frame. code is a valid
	// close code (ValidCloseCode), or CloseNoStatus when the close payload
	// was empty; reason is valid UTF-8. The Reader decodes nothing after it.
	OnClose(code int, reason string)
}

// Reader decodes the client-to-server byte stream of one WebSocket
// connection (RFC 6455, server side) and enforces the protocol: it is fed raw
// bytes in chunks of any size, from one byte to many frames.
//
// The zero value with MaxMessage set is ready to use. A Reader is not safe for
// concurrent use. It holds no memory while idle between messages: a partial
// frame or a fragmented message is copied into a buffer taken from a
// sync.Pool (size classes of 4 KiB, 64 KiB, and larger ones up to
// MaxMessage), which goes back to its pool as soon as the message has been
// delivered, the Reader fails, the peer closes, or Reset is called. A frame
// that arrives whole within one chunk is delivered without any copy. A
// compressed message (Deflate) is inflated into such a pooled buffer, by a
// pooled decompressor, when its last frame has arrived.
type Reader struct {
	// MaxMessage is the largest message payload accepted, after reassembly
	// of fragments and, for a compressed message, after inflating; a
	// message of exactly MaxMessage bytes is accepted. Set before the
	// first Feed, at most 1<<31 - 1; zero or less accepts only empty
	// messages.
	MaxMessage int

	// Decoder state, owned by the goroutine that calls Feed.
	msg    []byte      // pooled: payload of the data message in progress; nil when none or empty
	ctl    []byte      // pooled (cap maxControlPayload): partial control payload; nil when none
	err    *CloseError // first protocol violation; Feed returns it forever after
	remain int         // payload bytes of the current frame not yet received
	vpos   int32       // msg[:vpos] is valid UTF-8 ending on a rune boundary (text only)
	key    uint32      // masking key of the current frame, rotated to the next byte
	hdr    [maxWSHeader]byte
	hdrN   uint8 // bytes of a partial header held in hdr
	op     byte  // opcode of the current frame
	msgOp  byte  // OpText or OpBinary while a data message is in progress, else 0
	fin    bool  // FIN bit of the current frame
	inBody bool  // header done, payload of the current frame still arriving
	closed bool  // a close frame was delivered
	// compressed: the data message in progress (or the frame delivered
	// without a copy) had RSV1 on its first frame.
	compressed bool

	// Stop and Resume: input kept undecoded while stopped (pooled).
	held    []byte
	stopped bool

	// Deflate accepts messages compressed with permessage-deflate
	// (RFC 7692) without context takeover: the connection negotiated
	// DeflateResponse. A compressed message is marked by RSV1 on its first
	// frame; the Reader inflates it, with a decompressor taken from a pool
	// for that message only, and delivers the inflated payload. Without
	// Deflate, RSV1 is ErrReservedBits. Set before the first Feed. (It is
	// last so that it shares the padding of the state above.)
	Deflate bool
}

// Feed decodes data, calling h for every complete message and control frame,
// in stream order, on the calling goroutine. data is unmasked in place: the
// caller gives up its contents. Bytes of a frame that is not complete when
// data ends are copied and kept for the next call.
//
// Feed returns one of the Err* *CloseError values (ErrReservedBits,
// ErrMessageTooBig, ...) on the first protocol violation, after delivering
// everything that preceded it; its Code and Reason are the close frame to
// send. The Reader then releases its buffers and must not be fed again (Feed
// keeps returning the same error). Failing allocates nothing.
// After h.OnClose the caller stops feeding; the rest of data, and any later
// input, is ignored.
func (r *Reader) Feed(data []byte, h Handler) error {
	if r.err != nil {
		return r.err
	}
	for !r.closed && len(data) > 0 {
		if r.stopped {
			r.hold(data)
			return nil
		}
		if !r.inBody {
			var hdr []byte
			var err *CloseError
			hdr, data, err = r.header(data)
			if err != nil {
				return r.fail(err)
			}
			if hdr == nil {
				return nil // partial header kept in r.hdr
			}
			r.begin(hdr)
			if r.fin && r.op != OpContinuation && r.remain <= len(data) {
				// The whole unfragmented frame is in data: no copy.
				p := data[:r.remain:r.remain]
				data = data[r.remain:]
				maskBytes(r.key, p)
				r.remain = 0
				var err *CloseError
				if r.op < OpClose && r.compressed {
					r.compressed = false
					err = r.deliverDeflated(r.op, p, h)
				} else {
					err = r.deliver(r.op, p, h)
				}
				if err != nil {
					return r.fail(err)
				}
				continue
			}
			if r.op >= OpClose {
				r.ctl = getControl()
			} else if r.op != OpContinuation {
				r.msgOp = r.op
			}
			r.inBody = true
		}

		n := min(r.remain, len(data))
		p := data[:n:n]
		data = data[n:]
		r.key = maskBytes(r.key, p)
		r.remain -= n
		if r.op >= OpClose {
			r.ctl = append(r.ctl, p...)
		} else if n > 0 {
			r.appendMsg(p)
			if r.msgOp == OpText && !r.compressed {
				v, ok := validUTF8Prefix(r.msg[r.vpos:])
				if !ok {
					return r.fail(ErrInvalidUTF8)
				}
				r.vpos += int32(v)
			}
		}
		if r.remain > 0 {
			return nil // data is exhausted mid-frame
		}
		r.inBody = false

		switch {
		case r.op >= OpClose:
			p := r.ctl
			r.ctl = nil
			err := r.deliver(r.op, p, h)
			putControl(p)
			if err != nil {
				return r.fail(err)
			}
		case r.fin && r.compressed:
			// Detach the buffer before inflating so the Reader never
			// refers to memory it has given back.
			p, op := r.msg, r.msgOp
			r.msg, r.msgOp, r.compressed = nil, 0, false
			err := r.deliverDeflated(op, p, h)
			putMsg(p)
			if err != nil {
				return r.fail(err)
			}
		case r.fin:
			if r.msgOp == OpText && int(r.vpos) != len(r.msg) {
				return r.fail(ErrInvalidUTF8) // ends inside a rune
			}
			// Detach the buffer before the call so the Reader never
			// refers to memory it has given back.
			p, op := r.msg, r.msgOp
			r.msg, r.msgOp, r.vpos = nil, 0, 0
			h.OnMessage(op, p)
			putMsg(p)
		}
	}
	return nil
}

// Reset releases any buffered memory and returns the Reader to its zero state,
// keeping MaxMessage. It is called when the connection closes; the Reader may
// then decode a new stream.
func (r *Reader) Reset() {
	putMsg(r.msg)
	putControl(r.ctl)
	putMsg(r.held)
	*r = Reader{MaxMessage: r.MaxMessage, Deflate: r.Deflate}
}

// Stop is called by a Handler, during a Feed, to stop decoding: that Feed
// returns as soon as the callback returns, and the rest of its input, and
// all input given to Feed from then on, is kept undecoded until Resume. It
// is how a reader pauses a sender between two messages without losing or
// reordering what the sender already sent. Stop may also be called between
// Feeds.
func (r *Reader) Stop() { r.stopped = true }

// Stopped reports whether Stop was called and Resume was not since.
func (r *Reader) Stopped() bool { return r.stopped }

// Held returns the number of input bytes kept undecoded since Stop.
func (r *Reader) Held() int { return len(r.held) }

// Resume undoes Stop and decodes the input kept since, calling h as Feed
// does; the Handler may Stop again, and Resume then keeps the rest. It
// returns what Feed would have returned for that input.
func (r *Reader) Resume(h Handler) error {
	r.stopped = false
	p := r.held
	r.held = nil
	if len(p) == 0 {
		putMsg(p)
		if r.err != nil {
			return r.err
		}
		return nil
	}
	err := r.Feed(p, h) // what a new Stop keeps is copied out of p
	putMsg(p)
	return err
}

// hold keeps data, undecoded, behind the input already kept.
func (r *Reader) hold(data []byte) {
	if need := len(r.held) + len(data); need > cap(r.held) {
		nb := getMsg(need, cap(r.held), need)
		nb = append(nb, r.held...)
		putMsg(r.held)
		r.held = nb
	}
	r.held = append(r.held, data...)
}

// Buffered reports the number of input bytes the Reader currently holds: a
// partial frame header, the part of a message received so far, and a partial
// control payload. It is 0 between messages. It never exceeds
// MaxMessage+125 (a full fragmented message plus a partial ping inside it),
// or, with Deflate, DeflatedLimit(MaxMessage)+125 (a compressed message is
// held compressed until its last frame).
func (r *Reader) Buffered() int {
	return int(r.hdrN) + len(r.msg) + len(r.ctl)
}

// header takes the header of the next frame from data, or from r.hdr with
// data completing it. It returns the complete header and the rest of data,
// or a nil header when data ended first (the partial header is then kept in
// r.hdr). Every check that the bytes seen so far allow is done at once.
func (r *Reader) header(data []byte) (hdr, rest []byte, err *CloseError) {
	if r.hdrN == 0 {
		need, err := r.checkHeader(data)
		if err != nil {
			return nil, nil, err
		}
		if need <= len(data) {
			return data[:need], data[need:], nil
		}
	}
	for {
		need, err := r.checkHeader(r.hdr[:r.hdrN])
		if err != nil {
			return nil, nil, err
		}
		if int(r.hdrN) >= need {
			r.hdrN = 0
			return r.hdr[:need], data, nil
		}
		if len(data) == 0 {
			return nil, nil, nil
		}
		n := copy(r.hdr[r.hdrN:need], data)
		r.hdrN += uint8(n)
		data = data[n:]
	}
}

// checkHeader checks the first len(h) bytes of a frame header against the
// protocol and the Reader's state, and returns the header length those bytes
// call for (2 until the second byte is known). The checks run in a fixed
// order and each runs as soon as its bytes are present, so the verdict does
// not depend on how the input was chunked.
func (r *Reader) checkHeader(h []byte) (int, *CloseError) {
	if len(h) == 0 {
		return 2, nil
	}
	b0 := h[0]
	rsv1 := b0&0x40 != 0
	if b0&0x30 != 0 || rsv1 && !r.Deflate {
		return 0, ErrReservedBits
	}
	op := b0 & 0x0F
	compressed := false
	switch op {
	case OpText, OpBinary:
		if r.msgOp != 0 {
			return 0, ErrInterleavedMessage
		}
		compressed = rsv1
	case OpContinuation:
		if r.msgOp == 0 {
			return 0, ErrUnexpectedContinuation
		}
		if rsv1 {
			return 0, ErrCompressedContinuation
		}
		compressed = r.compressed
	case OpClose, OpPing, OpPong:
		if b0&0x80 == 0 {
			return 0, ErrFragmentedControl
		}
		if rsv1 {
			return 0, ErrCompressedControl
		}
	default:
		return 0, ErrBadOpcode
	}
	if len(h) < 2 {
		return 2, nil
	}
	b1 := h[1]
	if b1&0x80 == 0 {
		return 0, ErrUnmaskedClientFrame
	}
	n := uint64(b1 & 0x7F)
	ext := 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if op >= OpClose && n > maxControlPayload {
		return 0, ErrControlTooLong
	}
	need := 2 + ext + 4
	if len(h) < 2+ext {
		return need, nil
	}
	switch ext {
	case 2:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		n = binary.BigEndian.Uint64(h[2:])
		if n>>63 != 0 {
			return 0, ErrLengthMSB
		}
	}
	limit := r.MaxMessage
	if compressed {
		limit = DeflatedLimit(r.MaxMessage)
	}
	if op < OpClose && n > uint64(max(limit-len(r.msg), 0)) {
		return 0, ErrMessageTooBig
	}
	return need, nil
}

// begin starts a frame whose complete header, already checked, is h.
func (r *Reader) begin(h []byte) {
	r.fin = h[0]&0x80 != 0
	r.op = h[0] & 0x0F
	if r.op == OpText || r.op == OpBinary {
		r.compressed = h[0]&0x40 != 0
	}
	n := int(h[1] & 0x7F)
	k := 2
	switch n {
	case 126:
		n, k = int(binary.BigEndian.Uint16(h[2:])), 4
	case 127:
		// checkHeader bounded it by MaxMessage, so it fits in an int.
		n, k = int(binary.BigEndian.Uint64(h[2:])), 10
	}
	r.remain = n
	r.key = binary.LittleEndian.Uint32(h[k:])
}

// deliver passes the complete, unmasked payload p of an unfragmented frame
// with opcode op to h, after the checks that need the whole payload.
func (r *Reader) deliver(op byte, p []byte, h Handler) *CloseError {
	switch op {
	case OpText:
		if !utf8.Valid(p) {
			return ErrInvalidUTF8
		}
		h.OnMessage(op, p)
	case OpBinary:
		h.OnMessage(op, p)
	case OpPing:
		h.OnPing(p)
	case OpPong:
		h.OnPong(p)
	case OpClose:
		code, reason := CloseNoStatus, ""
		switch {
		case len(p) == 1:
			return ErrShortClose
		case len(p) >= 2:
			code = int(binary.BigEndian.Uint16(p))
			if !ValidCloseCode(code) {
				return ErrBadCloseCode
			}
			if !utf8.Valid(p[2:]) {
				return ErrInvalidCloseReason
			}
			reason = string(p[2:])
		}
		r.Reset()
		r.closed = true
		h.OnClose(code, reason)
	}
	return nil
}

// deliverDeflated inflates the compressed payload p of a complete data
// message with opcode op, checks it, and passes it to h.
func (r *Reader) deliverDeflated(op byte, p []byte, h Handler) *CloseError {
	m, err := inflate(p, r.MaxMessage)
	if err != nil {
		return err
	}
	if op == OpText && !utf8.Valid(m) {
		putMsg(m)
		return ErrInvalidUTF8
	}
	h.OnMessage(op, m)
	putMsg(m)
	return nil
}

// appendMsg appends p to the message in progress, growing its buffer as
// bytes arrive (never ahead of them by more than a size class or a doubling,
// so a header that only claims a large payload costs little). In the final
// frame the message's size is known and bounds the growth; before it, more
// fragments may follow and the buffer doubles, so that a message sent in
// many small fragments is copied O(log n) times, not once per fragment.
func (r *Reader) appendMsg(p []byte) {
	need := len(r.msg) + len(p)
	if need > cap(r.msg) {
		limit := need + r.remain
		if !r.fin {
			limit = r.MaxMessage
			if r.compressed {
				limit = DeflatedLimit(r.MaxMessage)
			}
		}
		nb := getMsg(need, cap(r.msg), limit)
		nb = append(nb, r.msg...)
		putMsg(r.msg)
		r.msg = nb
	}
	r.msg = append(r.msg, p...)
}

// fail records err, releases the buffers, and returns err.
func (r *Reader) fail(err *CloseError) error {
	r.Reset()
	r.err = err
	return err
}

// validUTF8Prefix checks p, which starts on a rune boundary of a text
// message that may continue after p. It returns the length of the longest
// prefix of p made of complete runes, and false when p is invalid whatever
// follows it: only an incomplete but still possible rune may be left over at
// the end.
func validUTF8Prefix(p []byte) (int, bool) {
	if utf8.Valid(p) {
		return len(p), true
	}
	// Find the start of the last rune: at most UTFMax-1 bytes back.
	s := len(p) - 1
	for s >= 0 && s > len(p)-utf8.UTFMax && !utf8.RuneStart(p[s]) {
		s--
	}
	if s < 0 || !utf8.RuneStart(p[s]) || !utf8.Valid(p[:s]) {
		return 0, false
	}
	if !possibleRune(p[s:]) {
		return 0, false
	}
	return s, true
}

// possibleRune reports whether t, which starts with a leading byte, is an
// incomplete UTF-8 sequence that some continuation makes valid. It follows
// the table of RFC 3629 section 4 (no overlong forms, no surrogates, nothing
// above U+10FFFF).
func possibleRune(t []byte) bool {
	lo, hi := byte(0x80), byte(0xBF)
	size := 0
	switch b := t[0]; {
	case b >= 0xC2 && b <= 0xDF:
		size = 2
	case b == 0xE0:
		size, lo = 3, 0xA0
	case b == 0xED:
		size, hi = 3, 0x9F
	case b >= 0xE1 && b <= 0xEF:
		size = 3
	case b == 0xF0:
		size, lo = 4, 0x90
	case b == 0xF4:
		size, hi = 4, 0x8F
	case b >= 0xF1 && b <= 0xF3:
		size = 4
	default:
		return false
	}
	if len(t) >= size {
		return false // complete, so utf8.Valid already judged it
	}
	if len(t) >= 2 && (t[1] < lo || t[1] > hi) {
		return false
	}
	if len(t) >= 3 && (t[2] < 0x80 || t[2] > 0xBF) {
		return false
	}
	return true
}

// Message buffer size classes. A buffer's capacity names its class:
// msgSmall, msgMid, or anything larger (msgLarge, sized on demand).
const (
	msgSmall = 4 << 10
	msgMid   = 64 << 10
)

// Pools of message and control buffers. They hold only buffers no Reader
// refers to; a Reader gives a buffer back exactly once, after detaching it.
var (
	msgSmallPool = sync.Pool{New: func() any { return new([msgSmall]byte) }}
	msgMidPool   = sync.Pool{New: func() any { return new([msgMid]byte) }}
	msgLargePool sync.Pool // *[]byte with cap > msgMid
	controlPool  = sync.Pool{New: func() any { return new([maxControlPayload]byte) }}
)

// getMsg returns an empty buffer with room for need bytes. For the large
// class, oldCap (the buffer it replaces) and limit (the most the message can
// need for the current frame) size it: at least double the old one when the
// frame calls for it, so a message fragmented into many pieces is not copied
// over and over.
func getMsg(need, oldCap, limit int) []byte {
	switch {
	case need <= msgSmall:
		return msgSmallPool.Get().(*[msgSmall]byte)[:0]
	case need <= msgMid:
		return msgMidPool.Get().(*[msgMid]byte)[:0]
	}
	c := max(need, min(2*oldCap, limit))
	if p, _ := msgLargePool.Get().(*[]byte); p != nil && cap(*p) >= c {
		return (*p)[:0]
	}
	return make([]byte, 0, c)
}

// putMsg gives a buffer from getMsg back to its pool. nil is ignored.
func putMsg(b []byte) {
	switch c := cap(b); {
	case c == 0:
	case c == msgSmall:
		msgSmallPool.Put((*[msgSmall]byte)(b[:msgSmall]))
	case c == msgMid:
		msgMidPool.Put((*[msgMid]byte)(b[:msgMid]))
	case c > msgMid:
		p := new([]byte) // only here: taking &b would move every b to the heap
		*p = b[:0]
		msgLargePool.Put(p)
	}
}

func getControl() []byte {
	return controlPool.Get().(*[maxControlPayload]byte)[:0]
}

func putControl(b []byte) {
	if cap(b) == maxControlPayload {
		controlPool.Put((*[maxControlPayload]byte)(b[:maxControlPayload]))
	}
}
