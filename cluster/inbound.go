package cluster

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
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
			c.handleMsg(m, &bt)
			for i := 0; i < 256; i++ {
				select {
				case m = <-c.msgs:
					c.handleMsg(m, &bt)
					continue
				default:
				}
				break
			}
			bt.Flush()
		}
	}
}

// handleMsg handles one message from NATS: a handover request (it has a
// reply subject), or what handle decodes.
func (c *Cluster) handleMsg(m *nats.Msg, bt *router.Batch) {
	if m.Sub == nil { // a handover's barrier
		bt.Flush()
		if done, ok := c.barriers.LoadAndDelete(m); ok {
			close(done.(chan struct{}))
		}
		return
	}
	if m.Reply != "" && m.Sub != nil && m.Subject == c.subj.handoverSubject(c.id) {
		bt.Flush() // the frames before the request reach the session first
		c.serveHandover(m)
		return
	}
	c.handle(m.Data, bt)
}

// handle decodes one message from NATS and hands it to the router or to the
// presence state machine. A malformed one is counted once as a
// cluster_malformed drop (a presence message possibly after its valid
// records were applied). Only the inbound goroutine calls it. data is not
// kept: a frame's body is copied into one frame.Buf shared by its local
// recipients, whose connections are queued in bt for the caller to flush.
// It makes no NATS call (a snapshot request goes through the outbox), so it
// can be driven without a connection.
func (c *Cluster) handle(data []byte, bt *router.Batch) {
	if !c.decode(data, bt) {
		c.st.Drop(stats.DropClusterMalformed, 1)
		c.warn.Do(func() { c.log.Warn("cluster message malformed", "bytes", len(data)) })
	}
}

// decode is handle; false means data is malformed.
func (c *Cluster) decode(data []byte, bt *router.Batch) bool {
	if len(data) < 2 {
		return false
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
			return false
		}
		if data[0] == kindDirect && c.forwarded(string(key), data) {
			return true
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
	case kindClose:
		peer := r.field()
		code := int(r.uint16())
		reason := r.field()
		if r.bad || len(r.b) > 0 || !frame.ValidCloseCode(code) {
			return false
		}
		c.rt.DisconnectLocal(string(peer), code, string(reason))
	case kindSyncReq:
		if r.field(); r.bad || len(r.b) > 0 {
			return false
		}
		c.wantSnapshot()
	case kindPresence:
		return c.presence(&r)
	default:
		return false
	}
	return true
}

// forwarded passes on data, a direct frame for peer, to the node peer's
// session moved to within DeadAfter, if peer is not connected here: through
// the outbox, as handle makes no NATS call. It reports whether it did.
func (c *Cluster) forwarded(peer string, data []byte) bool {
	if c.movedAny.Load() == 0 {
		return false // no session moved away lately: no lock
	}
	c.localMu.Lock()
	defer c.localMu.Unlock()
	inbox, ok := c.forwardInbox(peer)
	if !ok || c.local[peer] != nil {
		return false
	}
	c.queueFrame(inbox, append(c.out.buf[:c.out.mark], data...))
	return true
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
// node's snapshot if it was asked for. It returns false when the message is
// malformed: its records up to the bad one were applied. Only the inbound
// goroutine calls it.
func (c *Cluster) presence(r *reader) bool {
	nodeID := r.field()
	inc := r.uint64()
	seq := r.uint64()
	if r.bad || len(r.b) == 0 || len(nodeID) == 0 {
		return false
	}
	if string(nodeID) == c.id {
		c.warn.Do(func() { c.log.Error("another node uses this node's WSRELAY_NODE_ID") })
		return true
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
	return !r.bad
}

// localNewer reports whether a local connection of peer is newer than its
// registration at ts on node, which is then stale. applyPresence calls it
// under the view's lock (lock order: view, then localMu).
func (c *Cluster) localNewer(peer string, ts int64, node string) bool {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	lp := c.local[peer]
	// A peer whose session is moving to another node is no newer.
	return lp != nil && !newer(ts, node, lp.ts, c.id) && !c.moving[peer]
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
		// A peer whose session is moving to that node is not replaced.
		evict := lp != nil && newer(u.ts, u.node, lp.ts, c.id) && !c.moving[u.peer]
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

// requestSnapshot asks the node whose inbox is inbox for a snapshot,
// through the outbox: the control goroutine publishes it.
func (c *Cluster) requestSnapshot(inbox string) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.queue(inbox, appendField(append(c.out.buf[:c.out.mark], kindSyncReq), c.id))
}
