package frame

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// MaxHeaderLen is the length of the largest unmasked (server-to-client)
// WebSocket frame header: 2 bytes plus a 64-bit extended length.
const MaxHeaderLen = 10

// bufClasses are the capacities, header space included, of the pooled
// buffers. Bodies that need more are allocated for the occasion and left to
// the garbage collector.
var bufClasses = [...]int{128, 256, 2 << 10, 16 << 10, 128 << 10}

// bufPools holds released Bufs, one pool per class. A Buf in bufPools[k] has
// cap(B) == bufClasses[k] and no references.
var bufPools [len(bufClasses)]sync.Pool

// Buf holds one complete outgoing WebSocket frame, encoded once and shared
// by every recipient. Its life:
//
//  1. NewBuf returns it with one reference and MaxHeaderLen bytes reserved
//     in B for the frame header.
//  2. The owner appends the body to B, e.g.
//     b.B = frame.AppendPublish(b.B, room, from, data), then calls Finish.
//  3. The owner calls Retain once for the holders it hands b to (recipient
//     queues, in-flight writes), and each holder calls Release when done
//     with Bytes, the owner included.
//
// After Finish the bytes are immutable: nobody may write to B or append to
// it. They stay valid until the holder's own Release; after that the Buf may
// already be reused for another frame, so neither it nor any slice of it may
// be kept. Retain, Release and Deflated are safe for concurrent use; the
// rest belong to the owner until Finish.
//
// A data frame may also carry its permessage-deflate form (Deflated), made
// by the first holder that needs it and shared by the others like the frame
// itself; it is released with the frame.
type Buf struct {
	// B is the reserved header space followed by the body. Append the body
	// to it before Finish; never shrink it below MaxHeaderLen.
	B     []byte
	start int          // index of the first header byte, set by Finish
	refs  atomic.Int32 // holders that have yet to Release
	class int8         // index in bufClasses, or -1 when not pooled
	op    byte         // opcode given to Finish

	// deflated is the compressed form of the frame once made, or noDeflate
	// when compressing did not make it shorter; nil before. Set once,
	// under deflateMu; read without it.
	deflated  atomic.Pointer[Buf]
	deflateMu sync.Mutex
}

// NewBuf returns a Buf with one reference, an empty body and room for at
// least bodyHint body bytes without growing (the body may still outgrow it,
// at the cost of an allocation, and the Buf is then not pooled again).
// Buffers up to 128 KiB come from size-classed pools.
func NewBuf(bodyHint int) *Buf {
	need := MaxHeaderLen + max(bodyHint, 0)
	for k, size := range bufClasses {
		if need > size {
			continue
		}
		b, _ := bufPools[k].Get().(*Buf)
		if b == nil {
			b = &Buf{B: make([]byte, 0, size), class: int8(k)}
		}
		b.B = b.B[:MaxHeaderLen]
		b.start = 0
		b.refs.Store(1)
		return b
	}
	b := &Buf{B: make([]byte, MaxHeaderLen, need), class: -1}
	b.refs.Store(1)
	return b
}

// Body returns the body appended so far, a sub-slice of B.
func (b *Buf) Body() []byte { return b.B[MaxHeaderLen:] }

// Finish writes the header of an unmasked, final (FIN) WebSocket frame with
// opcode op (1 text, 2 binary, 8 close, 9 ping, 10 pong) and the body's
// length into the reserved space, right-aligned against the body. Control
// frames (close, ping, pong) must have bodies of at most 125 bytes (RFC 6455
// section 5.5); Finish does not check. After Finish the frame is immutable.
func (b *Buf) Finish(op byte) {
	b.finish(op & 0x0F)
}

// finish writes the header of a FIN frame whose first byte has the bits of
// b0 (opcode, and RSV1 for a compressed frame).
func (b *Buf) finish(b0 byte) {
	n := len(b.B) - MaxHeaderLen
	b.start = MaxHeaderLen - headerLen(n)
	b.op = b0 & 0x0F
	putHeader(b.B[b.start:MaxHeaderLen], b0, n)
}

// Bytes returns the complete frame, header and body, ready to be written to
// a socket. It is only meaningful after Finish, and valid until the caller's
// Release.
func (b *Buf) Bytes() []byte { return b.B[b.start:] }

// Retain adds n references, one per new holder. It must be called while the
// caller still holds a reference, so that the count cannot reach zero in
// between; it panics if n is negative or the Buf was already released.
func (b *Buf) Retain(n int32) {
	if n < 0 {
		panic("frame: Buf.Retain with a negative count")
	}
	if b.refs.Add(n) <= n {
		panic("frame: Buf.Retain after the last Release")
	}
}

// Release drops the caller's reference. The last one returns the Buf to its
// pool, so the caller must not touch b or its bytes afterwards. It panics
// when called more often than there were references, which is a bug.
func (b *Buf) Release() {
	n := b.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("frame: Buf released more times than retained")
	}
	if d := b.deflated.Swap(nil); d != nil && d != noDeflate {
		d.Release()
	}
	if b.class >= 0 && cap(b.B) == bufClasses[b.class] {
		bufPools[b.class].Put(b)
	}
}

// Refs returns the current number of references, for tests and assertions.
func (b *Buf) Refs() int32 { return b.refs.Load() }

// headerLen is the length of an unmasked frame header for a payload of n
// bytes.
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return MaxHeaderLen
}

// putHeader writes into h, which is exactly headerLen(n) bytes long, the
// header of an unmasked FIN frame with opcode op (and RSV1, when op has bit
// 0x40) and payload length n.
func putHeader(h []byte, op byte, n int) {
	h[0] = 0x80 | op&0x4F
	switch len(h) {
	case 2:
		h[1] = byte(n)
	case 4:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
}
