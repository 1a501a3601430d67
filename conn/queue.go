package conn

import "github.com/wsrelay/wsrelay/frame"

// ring is a fixed-capacity FIFO of shared frames. Not safe for concurrent
// use: the owning Conn guards it with its mutex.
//
// A ring is sealed by Shutdown once its last frame, a close frame, is
// pushed: it takes no more frames. close empties it, releasing every frame,
// and makes it ready for the pool again.
type ring struct {
	bufs   []*frame.Buf
	head   int
	n      int
	sealed bool
}

func newRing(capacity int) *ring { return &ring{bufs: make([]*frame.Buf, capacity)} }

func (r *ring) len() int {
	if r == nil {
		return 0
	}
	return r.n
}

// push appends b; the caller checked there is room and the ring is not
// sealed.
func (r *ring) push(b *frame.Buf) {
	i := r.head + r.n
	if i >= len(r.bufs) {
		i -= len(r.bufs)
	}
	r.bufs[i] = b
	r.n++
}

// seal pushes last, the final frame, and refuses every frame after it.
func (r *ring) seal(last *frame.Buf) {
	r.push(last)
	r.sealed = true
}

// isSealed reports whether r is sealed; a nil ring is not.
func (r *ring) isSealed() bool { return r != nil && r.sealed }

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

// close releases every frame still queued and returns how many there were.
// The ring is then empty and unsealed, ready to be reused.
func (r *ring) close() int {
	n := r.n
	for b := r.pop(); b != nil; b = r.pop() {
		b.Release()
	}
	r.head = 0
	r.sealed = false
	return n
}
