package conn

import (
	"bytes"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// A session resumed on another node of a cluster moves there with its send
// path (docs/protocol.md section 10, clustering): HandOff takes a detached
// Conn's numbering and frames out of it, the cluster carries them, and Adopt
// makes the detached Conn that continues the session on the other node.

// Handoff is the send path of a session on its way to another node: its
// numbering, the frames it holds for replay and those still queued, oldest
// first. It owns one reference on each frame.
type Handoff struct {
	// Sent is the number of the last data message taken off the queue to
	// be written; Replay holds the last len(Replay) of them, and Queue
	// the ones numbered from Sent+1 on.
	Sent uint64
	// Dropped counts the messages dropped on a full queue since the
	// client last heard of drops: it is part of the resume's "missed".
	Dropped uint64
	Replay  []*frame.Buf
	Queue   []*frame.Buf
}

// Release drops the Handoff's references, when it is not given to Adopt.
func (h *Handoff) Release() {
	for _, b := range h.Replay {
		b.Release()
	}
	for _, b := range h.Queue {
		b.Release()
	}
	h.Replay, h.Queue = nil, nil
}

// HandOff ends a detached Conn whose session moves to another node: its
// numbering and the references to its replayable and queued frames leave
// with the Handoff (nothing is counted as discarded: the frames are not
// lost), and the Conn takes no more frames. It returns false, and does
// nothing, when the Conn is not detached.
func (c *Conn) HandOff() (*Handoff, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.load() != phaseDetached {
		return nil, false
	}
	h := &Handoff{Sent: c.sent, Dropped: c.dropped}
	if r := c.replay; r != nil {
		h.Replay = make([]*frame.Buf, r.n)
		for i := range h.Replay {
			b := r.at(i)
			b.Retain(1)
			h.Replay[i] = b
		}
	}
	if c.ring != nil {
		h.Queue = make([]*frame.Buf, 0, c.ring.len())
		for b := c.ring.pop(); b != nil; b = c.ring.pop() {
			h.Queue = append(h.Queue, b) // the ring's reference moves
		}
	}
	c.dropped = 0
	c.teardown(phaseClosed) // the ring is empty: nothing is discarded
	return h, true
}

// Adopt returns the Conn of peer id at ip that continues, detached, the
// session h carries from another node. It takes h's references. Frames
// beyond this node's QueueSize are dropped as on a full queue (counted
// queue_full, part of the resume's "missed"); replayable frames beyond it
// are released as from a full replay buffer. pausable says whether the
// socket Attach will give it is a Resumer (flow control may pause its
// reading). The caller attaches it (Attach) or ends it (Expire).
func Adopt(env *Env, id, ip string, pausable bool, h *Handoff) *Conn {
	c := &Conn{ID: id, IP: ip, env: env, resume: true, pausable: pausable}
	c.Touch()
	c.sent, c.dropped = h.Sent, h.Dropped
	c.mu.Lock()
	for _, b := range h.Replay {
		c.replayPush(b)
	}
	for _, b := range h.Queue {
		if c.ring == nil {
			c.ring = env.getRing()
		}
		if c.ring.len() >= env.QueueSize {
			c.dropped++
			env.Stats.Drop(stats.DropQueueFull, 1)
			b.Release()
			continue
		}
		c.ring.push(b)
	}
	c.set(phaseDetached)
	c.mu.Unlock()
	h.Replay, h.Queue = nil, nil
	return c
}

// Merge completes a Conn made by Adopt while its session still lived on
// the old node: h is the send path the old node handed over at last, and
// mark the number of the last message queued there when the handover
// began. Since Adopt the Conn has queued what reached it here; the
// messages the old node queued after mark may have reached both nodes (a
// room's messages go to every node with a member), so those of them that
// are here too, byte for byte, are kept once. The Conn then holds the old
// node's numbering, replayable frames and queue, followed by what reached
// it here and not there. It takes h's references. It returns false, and
// releases h, when the Conn is not detached (it ended meanwhile).
func (c *Conn) Merge(h *Handoff, mark uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.load() != phaseDetached {
		h.Release()
		return false
	}
	var here []*frame.Buf
	if c.ring != nil {
		for b := c.ring.pop(); b != nil; b = c.ring.pop() {
			here = append(here, b)
		}
	}
	// The old node's messages after mark, the candidates for a double.
	var twins []*frame.Buf
	first := h.Sent - uint64(len(h.Replay)) + 1 // the number of h.Replay[0]
	for i, b := range h.Replay {
		if first+uint64(i) > mark {
			twins = append(twins, b)
		}
	}
	for i, b := range h.Queue {
		if h.Sent+1+uint64(i) > mark {
			twins = append(twins, b)
		}
	}
	matched := make([]bool, len(twins))
	kept := here[:0]
	for _, b := range here {
		if i := twinOf(b, twins, matched); i >= 0 {
			matched[i] = true
			b.Release()
			continue
		}
		kept = append(kept, b)
	}

	c.sent, c.dropped = h.Sent, c.dropped+h.Dropped
	c.replayRelease()
	for _, b := range h.Replay {
		c.replayPush(b)
	}
	for _, list := range [2][]*frame.Buf{h.Queue, kept} {
		for _, b := range list {
			if c.ring == nil {
				c.ring = c.env.getRing()
			}
			if c.ring.len() >= c.env.QueueSize {
				c.dropped++
				c.env.Stats.Drop(stats.DropQueueFull, 1)
				b.Release()
				continue
			}
			c.ring.push(b)
		}
	}
	h.Replay, h.Queue = nil, nil
	return true
}

// twinOf returns the index of the first unmatched frame of twins with b's
// bytes, or -1.
func twinOf(b *frame.Buf, twins []*frame.Buf, matched []bool) int {
	for i, t := range twins {
		if !matched[i] && bytes.Equal(t.Bytes(), b.Bytes()) {
			return i
		}
	}
	return -1
}
