package conn

import "github.com/wsrelay/wsrelay/frame"

// ring is a fixed-capacity FIFO of shared frames. Not safe for concurrent
// use: the owning Conn guards it with its mutex.
type ring struct {
	bufs []*frame.Buf
	head int
	n    int
}

func newRing(capacity int) *ring { return &ring{bufs: make([]*frame.Buf, capacity)} }

func (r *ring) len() int { return r.n }

// push appends b; the caller checked there is room.
func (r *ring) push(b *frame.Buf) {
	i := r.head + r.n
	if i >= len(r.bufs) {
		i -= len(r.bufs)
	}
	r.bufs[i] = b
	r.n++
}

// pop removes and returns the oldest frame, or nil when empty.
func (r *ring) pop() *frame.Buf {
	if r.n == 0 {
		return nil
	}
	b := r.bufs[r.head]
	r.bufs[r.head] = nil
	r.head++
	if r.head == len(r.bufs) {
		r.head = 0
	}
	r.n--
	return b
}

// peek returns the oldest frame without removing it, or nil.
func (r *ring) peek() *frame.Buf {
	if r == nil || r.n == 0 {
		return nil
	}
	return r.bufs[r.head]
}

// releaseAll releases every queued frame and returns how many there were.
func (r *ring) releaseAll() int {
	n := r.n
	for b := r.pop(); b != nil; b = r.pop() {
		b.Release()
	}
	r.head = 0
	return n
}
