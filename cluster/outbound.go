package cluster

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// scratch holds the buffers send builds a frame message in. A buffer is
// back in the pool once nats.go has copied it; ones grown past maxScratch
// are left to the garbage collector.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// PeerUp implements router.Backplane. The router calls it without holding
// any of its locks. It records the registration in the outbox under
// localMu, then drops an older registration of id on another node from the
// view and tells the local members (apply, which calls back into the
// router).
func (c *Cluster) PeerUp(id string) {
	c.localMu.Lock()
	lp := c.local[id]
	if lp == nil {
		lp = &localPeer{}
		c.local[id] = lp
	}
	lp.ts = time.Now().UnixNano()
	moving := c.moving[id]
	b := c.startPresence()
	if moving {
		b = append(b, recMovedUp)
	} else {
		b = append(b, recUp)
	}
	b = appendField(b, id)
	c.queuePresence(binary.BigEndian.AppendUint64(b, uint64(lp.ts)))
	c.localMu.Unlock()

	// An older connection of id on another node is replaced: forget it now
	// (peer_left to the local members of its rooms, as on a single node),
	// so that its node's late leave and down records find nothing. A
	// session that moved here replaces its registration there silently.
	var ch changes
	c.view.forgetPeer(id, &ch)
	if !moving {
		c.apply(&ch)
	}
}

// Moving implements router.Backplane: while id's session moves between
// nodes, its presence changes are recorded as moved records, which the
// other nodes apply without telling anyone. The router calls it without
// holding any of its locks.
func (c *Cluster) Moving(id string, moving bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	if moving {
		c.moving[id] = true
	} else {
		delete(c.moving, id)
	}
}

// PeerDown implements router.Backplane: it records the peer's leave in the
// outbox under localMu. The router calls it without holding any of its
// locks.
func (c *Cluster) PeerDown(id string) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	delete(c.local, id)
	rec := byte(recDown)
	if c.moving[id] {
		rec = recMovedDown
	}
	c.queuePresence(appendField(append(c.startPresence(), rec), id))
}

// Joined implements router.Backplane: the first local member subscribes
// the node to the room's subject. The router calls it under the room's
// lock, so for one room the subscriptions and joins are recorded in the
// outbox (under localMu) in the order they happen; the control goroutine
// makes the NATS calls later, with no lock held. It never blocks.
func (c *Cluster) Joined(room, peer string, first bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	b := c.startPresence()
	lp := c.local[peer]
	if lp == nil {
		// Joined before PeerUp (the router registers a connection after its
		// welcome): announce it first, so that the others do not take the
		// join for one of an older connection of the same id.
		lp = &localPeer{ts: time.Now().UnixNano()}
		c.local[peer] = lp
		b = appendRecUp(b, peer, lp.ts)
	}
	lp.rooms = append(lp.rooms, room)
	if first {
		// Before the join: the node hears the room's frames from the time
		// the others learn of its member.
		c.queueRoom(opSubscribe, room)
	}
	rec := byte(recJoin)
	if c.moving[peer] {
		rec = recMovedJoin
	}
	c.queuePresence(appendRecRoom(b, rec, peer, room))
}

// Left implements router.Backplane: the last local member unsubscribes the
// node from the room's subject. Like Joined, it is called under the room's
// lock, records the change in the outbox and never blocks.
func (c *Cluster) Left(room, peer string, last bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	if lp := c.local[peer]; lp != nil {
		for i, r := range lp.rooms {
			if r == room {
				n := len(lp.rooms) - 1
				lp.rooms[i] = lp.rooms[n]
				lp.rooms[n] = ""
				lp.rooms = lp.rooms[:n]
				break
			}
		}
	}
	if last {
		c.queueRoom(opUnsubscribe, room)
	}
	rec := byte(recLeave)
	if c.moving[peer] {
		rec = recMovedLeave
	}
	c.queuePresence(appendRecRoom(c.startPresence(), rec, peer, room))
}

// AppendMembers implements router.Backplane from the replicated view,
// under its read lock; it never waits for the network.
func (c *Cluster) AppendMembers(dst []string, room string, max int) []string {
	return c.view.appendMembers(dst, room, max)
}

// Direct implements router.Backplane: the peer directory names the node,
// whose inbox gets the frame. The view is read under its lock; the frame is
// published after the lock is released.
func (c *Cluster) Direct(to string, buf *frame.Buf) router.Reach {
	inbox, ok := c.view.peerInbox(to)
	if !ok {
		// A session that just moved to another node (handover.go): the
		// view may not know yet.
		c.localMu.Lock()
		inbox, ok = c.forwardInbox(to)
		c.localMu.Unlock()
		if !ok {
			return router.Unreached
		}
	}
	return c.send(inbox, kindDirect, to, buf)
}

// Publish implements router.Backplane: one message on the room's subject,
// which only nodes with members of the room subscribe to. The view is read
// under its lock; the frame is published after the lock is released.
func (c *Cluster) Publish(room string, buf *frame.Buf) router.Reach {
	subject, ok := c.view.roomSubject(room)
	if !ok {
		return router.Unreached
	}
	return c.send(subject, kindRoom, room, buf)
}

// Broadcast implements router.Backplane: one message on the broadcast
// subject, when the view knows at least one other node.
func (c *Cluster) Broadcast(buf *frame.Buf) router.Reach {
	if c.view.nodeCount() == 0 {
		return router.Unreached
	}
	return c.send(c.subj.all, kindBroadcast, "", buf)
}

// RemoteMembers implements router.Backplane from the replicated view.
func (c *Cluster) RemoteMembers(room string) int { return c.view.memberCount(room) }

// RemotePeers implements router.Backplane from the replicated view.
func (c *Cluster) RemotePeers() int { return c.view.peerCount() }

// Disconnect implements router.Backplane: the peer directory names the
// node, whose inbox gets the request. reason is at most 123 bytes (a close
// frame's limit), so it fits a one-byte length.
func (c *Cluster) Disconnect(id string, code int, reason string) bool {
	inbox, ok := c.view.peerInbox(id)
	if !ok {
		return false
	}
	var b [1 + 1 + 64 + 2 + 1 + 123]byte
	return c.nc.Publish(inbox, appendClose(b[:0], id, code, reason)) == nil
}

// send publishes buf's body behind a routing header: Sent, or Lost when
// nats.go refused it (disconnected, over the payload limit, closed).
// nats.go copies it into its write buffer, flushed by its own goroutine, so
// back-to-back messages leave in one write; nothing here waits for the
// network unless that buffer is past 32 KiB. buf is neither kept nor
// released. The caller holds no lock, neither the Cluster's nor the
// router's.
func (c *Cluster) send(subject string, kind byte, key string, buf *frame.Buf) router.Reach {
	bp := scratch.Get().(*[]byte)
	b := append((*bp)[:0], kind, buf.Bytes()[0]&0x0F)
	if kind != kindBroadcast {
		b = appendField(b, key)
	}
	b = append(b, buf.Body()...)
	err := c.nc.Publish(subject, b)
	if cap(b) <= maxScratch {
		*bp = b
		scratch.Put(bp)
	}
	if err != nil {
		return router.Lost
	}
	return router.Sent
}
