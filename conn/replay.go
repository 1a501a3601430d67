package conn

import "github.com/wsrelay/wsrelay/frame"

// replayTiers are the capacities of a replay buffer's storage, smallest
// first; the last tier is QueueSize frames. Most sessions hold the few
// frames of the last round trip or two (acknowledging pings, askAckLocked):
// an idle connection in the middle of a join burst pays 64 bytes for them,
// not the full size.
var replayTiers = [...]int{4, 16, 0}

// initReplays sets up the pools of replay storage, one per tier; a tier
// not below QueueSize is QueueSize frames.
func (e *Env) initReplays() {
	for i, n := range replayTiers {
		if n == 0 || n > e.QueueSize {
			n = e.QueueSize
		}
		e.replays[i].New = func() any { return &replay{bufs: make([]*frame.Buf, n)} }
	}
}

// replayTier returns the index of the pool of storage for n frames.
func (e *Env) replayTier(n int) int {
	for i, t := range replayTiers[:len(replayTiers)-1] {
		if n <= t && t < e.QueueSize {
			return i
		}
	}
	return len(replayTiers) - 1
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
	head int32
	n    int32
}

func (r *replay) len() int {
	if r == nil {
		return 0
	}
	return int(r.n)
}

// at returns the i-th oldest frame.
func (r *replay) at(i int) *frame.Buf {
	j := int(r.head) + i
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
	if int(r.head) == len(r.bufs) {
		r.head = 0
	}
	r.n--
}

// moveTo moves the frames into dst, which is empty and large enough.
func (r *replay) moveTo(dst *replay) {
	for i := 0; i < int(r.n); i++ {
		j := int(r.head) + i
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
	if int(r.n) == c.env.QueueSize {
		r.popOldest()
		evicted = true
	} else if int(r.n) == len(r.bufs) {
		// Full storage: move to the next tier.
		tier := c.env.replayTier(len(r.bufs))
		big := c.env.replays[tier+1].Get().(*replay)
		r.moveTo(big)
		c.env.replays[tier].Put(r)
		r, c.replay = big, big
	}
	j := int(r.head + r.n)
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
	c.env.replays[c.env.replayTier(len(r.bufs))].Put(r)
}
