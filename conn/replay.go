package conn

import "github.com/wsrelay/wsrelay/frame"

// replaySmall is the capacity of a replay buffer's first storage: a peer
// that gets a few messages between two pings never needs the full size.
const replaySmall = 16

// initReplays sets up the pools of replay storage: small storage first,
// QueueSize frames once it is outgrown.
func (e *Env) initReplays() {
	queueSize := e.QueueSize
	small := min(replaySmall, queueSize)
	e.replays[0].New = func() any { return &replay{bufs: make([]*frame.Buf, small)} }
	e.replays[1].New = func() any { return &replay{bufs: make([]*frame.Buf, queueSize)} }
}

// replay holds the data messages a session sent and its client has not yet
// acknowledged (docs/protocol.md section 10), oldest first, as references to the
// shared frames. It keeps at most its Env's QueueSize frames: pushing onto a
// full buffer releases the oldest. Not safe for concurrent use: the owning
// Conn guards it with its mutex.
//
// Its storage comes from the Env's pools and goes back as soon as it is
// empty, so a session that was acknowledged costs no replay memory.
type replay struct {
	bufs []*frame.Buf
	head int
	n    int
}

func (r *replay) len() int {
	if r == nil {
		return 0
	}
	return r.n
}

// at returns the i-th oldest frame.
func (r *replay) at(i int) *frame.Buf {
	j := r.head + i
	if j >= len(r.bufs) {
		j -= len(r.bufs)
	}
	return r.bufs[j]
}

// popOldest removes the oldest frame and releases it.
func (r *replay) popOldest() {
	r.bufs[r.head].Release()
	r.bufs[r.head] = nil
	r.head++
	if r.head == len(r.bufs) {
		r.head = 0
	}
	r.n--
}

// moveTo moves the frames into dst, which is empty and large enough.
func (r *replay) moveTo(dst *replay) {
	for i := 0; i < r.n; i++ {
		j := r.head + i
		if j >= len(r.bufs) {
			j -= len(r.bufs)
		}
		dst.bufs[i] = r.bufs[j]
		r.bufs[j] = nil
	}
	dst.head, dst.n = 0, r.n
	r.head, r.n = 0, 0
}

// replayPush appends b, whose reference passes to the buffer, to c's replay
// buffer, and releases the oldest frame when the buffer holds QueueSize
// frames already; it reports whether it did. Called under mu.
func (c *Conn) replayPush(b *frame.Buf) (evicted bool) {
	r := c.replay
	if r == nil {
		r = c.env.replays[0].Get().(*replay)
		c.replay = r
	}
	if r.n == c.env.QueueSize {
		r.popOldest()
		evicted = true
	} else if r.n == len(r.bufs) {
		// Full small storage: move to the full size.
		big := c.env.replays[1].Get().(*replay)
		r.moveTo(big)
		c.env.replays[0].Put(r)
		r, c.replay = big, big
	}
	j := r.head + r.n
	if j >= len(r.bufs) {
		j -= len(r.bufs)
	}
	r.bufs[j] = b
	r.n++
	return evicted
}

// replayTrim releases the frames numbered up to n, which the client
// acknowledged, and gives the storage back once it is empty. Called under mu.
func (c *Conn) replayTrim(n uint64) {
	r := c.replay
	if r == nil {
		return
	}
	oldest := c.sent - uint64(r.n) + 1
	for r.n > 0 && oldest <= n {
		r.popOldest()
		oldest++
	}
	if r.n == 0 {
		c.replayRelease()
	}
}

// replayRelease releases every frame of the replay buffer and gives its
// storage back. Called under mu.
func (c *Conn) replayRelease() {
	r := c.replay
	if r == nil {
		return
	}
	for r.n > 0 {
		r.popOldest()
	}
	r.head = 0
	c.replay = nil
	if len(r.bufs) < c.env.QueueSize {
		c.env.replays[0].Put(r)
	} else {
		c.env.replays[1].Put(r)
	}
}
