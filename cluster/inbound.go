package cluster

import (
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// inbound is the inbound goroutine, started by Start and stopped by Close.
// It handles every message from NATS in arrival order: frames for local
// peers and the other nodes' presence. It routes everything that is
// already waiting (up to 256 more messages) before flushing the touched
// connections once.
func (c *Cluster) inbound() {
	defer c.wg.Done()
	var bt router.Batch
	for {
		select {
		case <-c.done:
			return
		case m := <-c.msgs:
			c.handle(m.Data, &bt)
			for i := 0; i < 256; i++ {
				select {
				case m = <-c.msgs:
					c.handle(m.Data, &bt)
					continue
				default:
				}
				break
			}
			bt.Flush()
		}
	}
}

// handle decodes one message from NATS and hands it to the router or to the
// presence state machine; malformed ones are ignored. Only the inbound
// goroutine calls it. data is not kept: a frame's body is copied into one
// frame.Buf shared by its local recipients, whose connections are queued in
// bt for the caller to flush.
func (c *Cluster) handle(data []byte, bt *router.Batch) {
	if len(data) < 2 {
		return
	}
	r := reader{b: data[1:]}
	switch data[0] {
	case kindDirect, kindRoom, kindBroadcast:
		op := r.byte()
		var key []byte
		if data[0] != kindBroadcast {
			key = r.field()
		}
		if r.bad || op != frame.OpText && op != frame.OpBinary {
			return
		}
		buf := frame.NewBuf(len(r.b))
		buf.B = append(buf.B, r.b...)
		buf.Finish(op)
		switch data[0] {
		case kindDirect:
			c.rt.DeliverDirect(string(key), buf, bt)
		case kindRoom:
			c.rt.DeliverRoom(string(key), buf, bt)
		default:
			c.rt.DeliverAll(buf, bt)
		}
		buf.Release()
	case kindSyncReq:
		c.wantSnapshot()
	case kindPresence:
		c.presence(&r)
	}
}

// wantSnapshot schedules a snapshot on the control goroutine. It never
// blocks: a snapshot already scheduled covers this request too.
func (c *Cluster) wantSnapshot() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// presence applies one presence message of another node to the view, then,
// with the view's lock released, asks that node for a snapshot if the view
// saw a gap, tells the local members what changed, and schedules this
// node's snapshot if it was asked for. Only the inbound goroutine calls it.
func (c *Cluster) presence(r *reader) {
	nodeID := r.field()
	inc := r.uint64()
	seq := r.uint64()
	if r.bad || len(r.b) == 0 {
		return
	}
	if string(nodeID) == c.id {
		c.warn.Do(func() { c.log.Error("another node uses this node's WSRELAY_NODE_ID") })
		return
	}
	var ch changes
	ask, hello := c.view.applyPresence(nodeID, inc, seq, r, time.Now(), c.localNewer, &ch)
	if ask != "" {
		c.requestSnapshot(ask)
	}
	c.apply(&ch)
	if hello {
		c.wantSnapshot()
	}
}

// localNewer reports whether a local connection of peer is newer than its
// registration at ts on node, which is then stale. applyPresence calls it
// under the view's lock (lock order: view, then localMu).
func (c *Cluster) localNewer(peer string, ts int64, node string) bool {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	lp := c.local[peer]
	return lp != nil && !newer(ts, node, lp.ts, c.id)
}

// apply closes the local connections that a newer one of the same id on
// another node replaced, then tells the local members about remote joins and
// leaves (in that order: the replaced connection leaves before its
// successor joins). It calls into the router (Evict, which calls PeerDown,
// and RemoteJoined/RemoteLeft), so its caller holds no lock: neither the
// view's nor localMu, which it takes only to read c.local.
func (c *Cluster) apply(ch *changes) {
	for _, u := range ch.ups {
		c.localMu.Lock()
		lp := c.local[u.peer]
		evict := lp != nil && newer(u.ts, u.node, lp.ts, c.id)
		c.localMu.Unlock()
		if evict {
			c.rt.Evict(u.peer)
		}
	}
	if len(ch.notes) > 0 {
		var bt router.Batch
		for _, nt := range ch.notes {
			if nt.joined {
				c.rt.RemoteJoined(nt.room, nt.peer, &bt)
			} else {
				c.rt.RemoteLeft(nt.room, nt.peer, &bt)
			}
		}
		bt.Flush()
	}
}

// requestSnapshot asks the node whose inbox is inbox for a snapshot. It
// publishes on NATS, so its caller (the inbound goroutine) holds no lock.
func (c *Cluster) requestSnapshot(inbox string) {
	var b [2 + 128]byte
	_ = c.nc.Publish(inbox, appendField(append(b[:0], kindSyncReq), c.id))
}
