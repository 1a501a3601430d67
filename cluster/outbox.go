package cluster

import (
	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/stats"
)

// outbox holds the NATS calls that presence changes owe, in the order of
// the changes: presence messages, snapshot requests, and the room subjects
// to subscribe or unsubscribe. The router reports changes under its own
// locks (Joined, Left) and the Cluster records them under localMu; nats.go
// may block once its write buffer passes 32 KiB, so neither lock may be
// held across the calls. The control goroutine carries them out, in order,
// holding no lock (drain).
//
// Recording never blocks and never calls NATS. Presence messages are copied
// back to back into buf; past maxOutbox bytes (NATS stalled for long) the
// waiting messages are discarded, subscriptions kept, and a snapshot sent
// once NATS takes messages again puts the other nodes right.
type outbox struct {
	buf     []byte // the messages' bytes, back to back
	ops     []outOp
	mark    int  // where the message being built starts in buf
	dropped bool // messages were discarded: a snapshot is owed
	// inSnapshot is set while a snapshot is recorded; snapBytes counts the
	// snapshots' bytes, which the bound allows on top of maxOutbox (a
	// snapshot is as large as the node's own peers and rooms make it).
	inSnapshot bool
	snapBytes  int
}

// outOp is one NATS call of the outbox.
type outOp struct {
	kind    byte   // opPublish, opSubscribe or opUnsubscribe
	subject string // opPublish: the subject; the others: the room
	start   int    // opPublish: the message is buf[start:end]
	end     int
}

const (
	opPublish = iota
	opSubscribe
	opUnsubscribe
	opForward // like opPublish, for a frame: its loss is counted
)

// queue records the message buf[o.mark:] (b is o.buf, possibly grown) for
// subject. Guarded by localMu.
func (c *Cluster) queue(subject string, b []byte) { c.queueOp(opPublish, subject, b) }

// queueFrame is queue for a frame passed on to another node: if it is
// discarded or NATS refuses it, it counts as cluster_send_failed.
func (c *Cluster) queueFrame(subject string, b []byte) { c.queueOp(opForward, subject, b) }

func (c *Cluster) queueOp(kind byte, subject string, b []byte) {
	o := &c.out
	if c.closed {
		o.buf = b[:o.mark]
		if kind == opForward {
			c.st.Drop(stats.DropClusterSendFailed, 1)
		}
		return
	}
	o.buf = b
	o.ops = append(o.ops, outOp{kind: kind, subject: subject, start: o.mark, end: len(b)})
	if o.inSnapshot {
		o.snapBytes += len(b) - o.mark
	}
	o.mark = len(b)
	if len(o.buf) > maxOutbox+o.snapBytes {
		if n := o.discard(); n > 0 {
			c.st.Drop(stats.DropClusterSendFailed, n)
		}
	}
	c.signal()
}

// queueRoom records a subscription (opSubscribe) or unsubscription
// (opUnsubscribe) of room's subject. Guarded by localMu.
func (c *Cluster) queueRoom(kind byte, room string) {
	if c.closed {
		return
	}
	c.out.ops = append(c.out.ops, outOp{kind: kind, subject: room})
	c.signal()
}

// signal wakes the control goroutine; it never blocks.
func (c *Cluster) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// discard drops the waiting messages, keeping the (un)subscriptions in
// their order, and notes that a snapshot is owed. It returns how many of
// the messages were frames (opForward): lost, unlike presence, which the
// snapshot restores.
func (o *outbox) discard() (frames int) {
	n := 0
	for _, op := range o.ops {
		switch op.kind {
		case opPublish:
		case opForward:
			frames++
		default:
			o.ops[n] = op
			n++
		}
	}
	clear(o.ops[n:])
	o.ops = o.ops[:n]
	o.buf = o.buf[:0]
	o.mark = 0
	o.snapBytes = 0
	o.dropped = true
	return frames
}

// reset empties the outbox for reuse.
func (o *outbox) reset() {
	clear(o.ops)
	o.ops = o.ops[:0]
	o.buf = o.buf[:0]
	if cap(o.buf) > maxScratch {
		o.buf = nil
	}
	o.mark = 0
	o.dropped = false
	o.inSnapshot = false
	o.snapBytes = 0
}

// drain carries out the outbox, holding no lock while it calls NATS. It
// reports whether messages had been discarded (a snapshot is owed). Only
// the control goroutine calls it, and Close once that goroutine stopped.
func (c *Cluster) drain() (dropped bool) {
	c.localMu.Lock()
	c.out, c.spare = c.spare, c.out
	c.localMu.Unlock()
	o := &c.spare
	for _, op := range o.ops {
		switch op.kind {
		case opPublish:
			// A failure (NATS unreachable) leaves a gap in the presence
			// numbering; the others then ask for a snapshot.
			_ = c.nc.Publish(op.subject, o.buf[op.start:op.end])
		case opForward:
			if c.nc.Publish(op.subject, o.buf[op.start:op.end]) != nil {
				c.st.Drop(stats.DropClusterSendFailed, 1)
			}
		case opSubscribe:
			if c.rooms[op.subject] == nil {
				sub, err := c.nc.ChanSubscribe(c.subj.roomSubject(op.subject), c.msgs)
				if err != nil {
					c.warn.Do(func() { c.log.Warn("cluster subscribe failed", "err", err) })
					continue
				}
				c.rooms[op.subject] = sub
			}
		case opUnsubscribe:
			if sub := c.rooms[op.subject]; sub != nil {
				c.countSub(sub)
				_ = sub.Unsubscribe()
				delete(c.rooms, op.subject)
				delete(c.counted, sub)
			}
		}
	}
	dropped = o.dropped
	o.reset()
	return dropped
}

// countDropped counts, as cluster_slow_consumer, the messages nats.go
// dropped since the last count because the inbound goroutine did not take
// them in time: it reads every subscription's drop count when all is true,
// else only when nats.go reported a slow consumer since. It reports whether
// it found new drops. Only the control goroutine calls it, and Close once
// that goroutine stopped.
func (c *Cluster) countDropped(all bool) bool {
	if !c.slow.Swap(false) && !all {
		return false
	}
	n := 0
	for _, sub := range c.subs {
		n += c.countSub(sub)
	}
	for _, sub := range c.rooms {
		n += c.countSub(sub)
	}
	return n > 0
}

// countSub counts the drops of sub not counted yet and returns how many.
func (c *Cluster) countSub(sub *nats.Subscription) int {
	total, err := sub.Dropped()
	if err != nil {
		return 0
	}
	n := total - c.counted[sub]
	if n <= 0 {
		return 0
	}
	c.counted[sub] = total
	c.st.Drop(stats.DropClusterSlowConsumer, n)
	return n
}
