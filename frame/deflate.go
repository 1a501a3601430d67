package frame

import (
	"compress/flate"
	"io"
	"sync"
)

// permessage-deflate (RFC 7692) without context takeover: each message is
// compressed and inflated on its own, by compressors and decompressors taken
// from pools for the duration of one message. No connection holds one.

// deflateLevel is the compress/flate level of outgoing messages. A message
// sent to a room is compressed once for all of its recipients, but a direct
// message is compressed for one: the fastest level keeps the cost per
// message small, and JSON still shrinks to a third or less.
const deflateLevel = flate.BestSpeed

// deflateTail is what a sender removes from the end of a compressed message
// (the empty stored block of a sync flush, RFC 7692 section 7.2.1) and the
// receiver puts back, followed here by an empty final stored block so that
// the decompressor ends with io.EOF instead of waiting for more input.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// DeflatedLimit is the largest compressed message a Reader accepts on the
// wire when inflated messages are limited to maxMessage bytes: the limit
// plus what DEFLATE may add to data that does not compress (5 bytes per
// stored block, of 64 KiB in compress/flate and zlib; far fewer here), so
// that a message of maxMessage incompressible bytes is still accepted.
func DeflatedLimit(maxMessage int) int {
	return maxMessage + maxMessage/128 + 64
}

// noDeflate marks a Buf whose frame is not worth compressing.
var noDeflate = new(Buf)

// Deflated returns the frame compressed with permessage-deflate, for a
// recipient that negotiated DeflateResponse: the same message as Bytes,
// with RSV1 set and the body compressed on its own (no context). It returns
// nil, and the recipient gets Bytes, when the frame is not a text or binary
// frame, when its body is shorter than minBody bytes, or when compressing
// does not make the frame shorter.
//
// The first call compresses, once for every holder: concurrent callers wait
// for it, later ones get the same bytes at the cost of an atomic load. Call
// it only after Finish, with the same minBody every time. The bytes are in
// a pooled Buf owned by b and stay valid until the caller's Release of b.
func (b *Buf) Deflated(minBody int) []byte {
	if d := b.deflated.Load(); d != nil {
		return d.deflatedBytes()
	}
	if b.op != OpText && b.op != OpBinary || len(b.B)-MaxHeaderLen < minBody {
		return nil
	}
	b.deflateMu.Lock()
	defer b.deflateMu.Unlock()
	if d := b.deflated.Load(); d != nil {
		return d.deflatedBytes()
	}
	body := b.Body()
	d := NewBuf(len(body))
	d.B = appendDeflated(d.B, body)
	d.finish(0x40 | b.op)
	if len(d.Bytes()) >= len(b.Bytes()) {
		d.Release()
		d = noDeflate
	}
	b.deflated.Store(d)
	return d.deflatedBytes()
}

// deflatedBytes returns the frame of a Buf stored as a compressed form, or
// nil for noDeflate.
func (b *Buf) deflatedBytes() []byte {
	if b == noDeflate {
		return nil
	}
	return b.Bytes()
}

// compressor is a pooled flate.Writer with the sink it writes into.
type compressor struct {
	fw  *flate.Writer
	dst appendWriter
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var compressors = sync.Pool{New: func() any {
	c := new(compressor)
	c.fw, _ = flate.NewWriter(&c.dst, deflateLevel) // the level is valid: no error
	return c
}}

// appendDeflated appends the compressed form of one message, body, to dst,
// as permessage-deflate sends it: a raw DEFLATE stream ending in a sync
// flush, without its last four bytes.
func appendDeflated(dst, body []byte) []byte {
	c := compressors.Get().(*compressor)
	c.dst.b = dst
	c.fw.Reset(&c.dst)
	_, _ = c.fw.Write(body) // appendWriter never fails
	_ = c.fw.Flush()
	dst = c.dst.b
	c.dst.b = nil
	compressors.Put(c)
	return dst[:len(dst)-4]
}

// decompressor is a pooled flate reader with the source it reads from.
type decompressor struct {
	fr  io.ReadCloser // also a flate.Resetter
	src tailReader
	one [1]byte // probe past the limit (a local would escape)
}

// tailReader reads p, then deflateTail. It is an io.ByteReader so that the
// flate reader reads from it directly, without a bufio.Reader of its own.
type tailReader struct {
	p    []byte
	tail int // bytes of deflateTail already read
}

func (r *tailReader) Read(b []byte) (int, error) {
	if len(r.p) > 0 {
		n := copy(b, r.p)
		r.p = r.p[n:]
		return n, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(b, deflateTail[r.tail:])
	r.tail += n
	return n, nil
}

func (r *tailReader) ReadByte() (byte, error) {
	if len(r.p) > 0 {
		c := r.p[0]
		r.p = r.p[1:]
		return c, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	c := deflateTail[r.tail]
	r.tail++
	return c, nil
}

var decompressors = sync.Pool{New: func() any {
	d := new(decompressor)
	d.fr = flate.NewReader(&d.src)
	return d
}}

// inflate returns the message the compressed payload p inflates to, in a
// buffer from getMsg that the caller gives back with putMsg (nil for an
// empty message). It stops as soon as the message is found to be longer
// than limit bytes, so that a payload inflating to gigabytes costs no more
// memory and time than limit bytes of output: ErrInflatedTooBig. Corrupt
// compressed data is ErrBadDeflate.
//
// The decompressor and the output buffer come from pools, so inflating
// allocates nothing of ours; compress/flate itself allocates a few small
// tables for a block whose dynamic Huffman codes are longer than 9 bits
// (about 100 bytes in 4 allocations for 2 KB of varied JSON).
func inflate(p []byte, limit int) ([]byte, *CloseError) {
	d := decompressors.Get().(*decompressor)
	defer decompressors.Put(d)
	d.src = tailReader{p: p}
	_ = d.fr.(flate.Resetter).Reset(&d.src, nil) // never fails without a dictionary
	var out []byte
	for {
		if len(out) >= limit {
			// At the limit: one more byte decides whether the message
			// ends here or is too big.
			n, err := io.ReadFull(d.fr, d.one[:])
			return d.finish(out, n > 0, err)
		}
		if len(out) == cap(out) {
			nb := getMsg(len(out)+1, cap(out), limit)
			nb = append(nb, out...)
			putMsg(out)
			out = nb
		}
		n, err := d.fr.Read(out[len(out):min(cap(out), limit)])
		out = out[:len(out)+n]
		if err != nil {
			return d.finish(out, false, err)
		}
	}
}

// finish ends an inflate: it drops the reference to the payload and turns
// the decompressor's last result into inflate's.
func (d *decompressor) finish(out []byte, tooBig bool, err error) ([]byte, *CloseError) {
	d.src.p = nil
	var ce *CloseError
	switch {
	case tooBig:
		ce = ErrInflatedTooBig
	case err != io.EOF:
		ce = ErrBadDeflate
	case len(out) > 0:
		return out, nil
	}
	putMsg(out)
	return nil, ce
}
