package cluster

import (
	"encoding/binary"
	"time"
)

// This node's presence. startPresence, queuePresence and publishPresence
// are guarded by localMu: a message is numbered and recorded in the outbox
// under it, so the others receive them in the order of the changes.

// startPresence starts the next presence message at the end of the
// outbox's buffer and returns the buffer.
func (c *Cluster) startPresence() []byte {
	c.seq++
	return appendPresenceHeader(c.out.buf[:c.out.mark], c.id, c.inc, c.seq)
}

// queuePresence records the message started by startPresence, whose
// records b now ends with, for the control goroutine to publish.
func (c *Cluster) queuePresence(b []byte) {
	c.queue(c.subj.presence, b)
}

// publishPresence records a message holding one record without fields. A
// heartbeat repeats the number of the last message.
func (c *Cluster) publishPresence(rec byte) {
	var b []byte
	if rec == recHeartbeat {
		b = appendPresenceHeader(c.out.buf[:c.out.mark], c.id, c.inc, c.seq)
	} else {
		b = c.startPresence()
	}
	c.queuePresence(append(b, rec))
}

func appendRecUp(dst []byte, peer string, ts int64) []byte {
	dst = appendField(append(dst, recUp), peer)
	return binary.BigEndian.AppendUint64(dst, uint64(ts))
}

func appendRecRoom(dst []byte, rec byte, peer, room string) []byte {
	return appendField(appendField(append(dst, rec), peer), room)
}

// publishSnapshot records this node's whole presence in the outbox: every
// local peer and its rooms, between a start and an end record, cut into
// messages of about snapshotChunk bytes. hello asks every other node to
// answer with its own. It takes localMu; the caller drains the outbox. Only
// the control goroutine calls it.
func (c *Cluster) publishSnapshot(hello bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.out.inSnapshot = true
	defer func() { c.out.inSnapshot = false }()
	c.gen++
	b := binary.BigEndian.AppendUint64(append(c.startPresence(), recSnapStart), c.gen)
	h := byte(0)
	if hello {
		h = 1
	}
	b = append(b, h)
	for id, lp := range c.local {
		if len(b)-c.out.mark > snapshotChunk {
			c.queuePresence(b)
			b = c.startPresence()
		}
		b = appendRecUp(b, id, lp.ts)
		for _, room := range lp.rooms {
			b = appendRecRoom(b, recJoin, id, room)
		}
	}
	c.queuePresence(binary.BigEndian.AppendUint64(append(b, recSnapEnd), c.gen))
}

// control is the control goroutine, started by Start and stopped by Close.
// It is the only one to make the NATS calls of presence: it carries out the
// outbox (presence changes, snapshot requests, room subscriptions) with no
// lock held, sends heartbeats and the snapshots that were asked for, counts
// the messages nats.go dropped, and expires silent nodes (telling the local
// members, with the view's lock released).
func (c *Cluster) control() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.Heartbeat / 4)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case done := <-c.syncs:
			// A handover waits until the subscriptions recorded so far are
			// in place on the NATS server.
			if c.drain() {
				c.publishSnapshot(false)
				c.drain()
			}
			_ = c.nc.FlushTimeout(time.Second)
			close(done)
		case <-c.hello:
			c.publishSnapshot(true)
		case <-c.kick:
			c.publishSnapshot(false)
		case now := <-tick.C:
			beat := now.Sub(last) >= c.cfg.Heartbeat-c.cfg.Heartbeat/8
			if beat {
				last = now
				c.localMu.Lock()
				c.publishPresence(recHeartbeat)
				c.localMu.Unlock()
			}
			// Drops are read at every heartbeat, and at every tick after
			// nats.go reported a slow consumer until they stop growing.
			if c.countDropped(beat) {
				c.slow.Store(true)
			}
			c.pruneMoved(now)
			var ch changes
			for _, id := range c.view.expire(now.Add(-c.cfg.DeadAfter), &ch) {
				c.log.Warn("cluster node lost", "peer_node", id)
			}
			c.apply(&ch)
		}
		if c.drain() {
			// Presence was discarded while NATS stalled: the snapshot
			// puts the others right.
			c.publishSnapshot(false)
			c.drain()
		}
	}
}

// Other nodes' presence: the state machine that applies their messages to
// the view. It is a view method, so that the view's lock stays inside the
// view.

// applyPresence applies the records of one presence message of node
// (incarnation inc, number seq) to the view, at now, and records in ch what
// the local router must be told. stale reports whether a local connection
// is newer than a registration of the same peer at ts on node; it is called
// with mu held (lock order: the view's mu, then what stale takes).
//
// ask is the inbox of node when the message shows a gap in its numbering
// (or node is new) and node was not asked within the last askEvery: the
// caller publishes the snapshot request once applyPresence returned, as no
// NATS call is made under mu. hello is true when node asked for this node's
// snapshot. applyPresence takes mu; only the inbound goroutine calls it.
func (v *view) applyPresence(node []byte, inc, seq uint64, r *reader, now time.Time, stale func(peer string, ts int64, node string) bool, ch *changes) (ask string, hello bool) {
	first := r.b[0]
	v.mu.Lock()
	defer v.mu.Unlock()
	n := v.nodes[string(node)]
	switch {
	case n != nil && n.inc == inc:
		want := n.seq + 1
		if first == recHeartbeat {
			want = n.seq
		}
		if seq != want && first != recSnapStart {
			ask = v.ask(n, now)
		}
	default:
		if n != nil { // the node restarted: its old peers are gone
			v.dropNode(n, ch)
		}
		n = v.addNode(string(node), inc, now)
		if first != recSnapStart && first != recBye {
			ask = v.ask(n, now)
		}
	}
	n.seq = seq
	n.seen = now
	for len(r.b) > 0 && !r.bad {
		switch rec := r.byte(); rec {
		case recHeartbeat:
		case recSnapStart:
			n.gen = r.uint64()
			n.syncing = true
			hello = r.byte() == 1 || hello
		case recSnapEnd:
			if gen := r.uint64(); !r.bad && n.syncing && gen == n.gen {
				v.sweep(n, gen, ch)
				n.syncing = false
			}
		case recUp:
			peer := r.field()
			ts := int64(r.uint64())
			if !r.bad && !stale(string(peer), ts, n.id) {
				v.register(n, string(peer), ts, ch)
			}
		case recDown:
			if p := n.peers[string(r.field())]; p != nil {
				v.removePeer(p, ch)
			}
		case recJoin, recLeave:
			peer, room := r.field(), r.field()
			if r.bad {
				break
			}
			p := n.peers[string(peer)]
			if rec == recJoin {
				if p == nil && !stale(string(peer), 0, n.id) { // its registration was lost or is late
					p = v.register(n, string(peer), 0, ch)
				}
				if p != nil {
					v.join(p, string(room), ch)
				}
			} else if p != nil {
				v.leave(p, string(room), ch)
			}
		case recMovedUp:
			// As recUp, but the registration it replaces moves silently,
			// rooms included: the peer is never missing from a room, in
			// which case a publish here would not be sent to its node.
			// The move is the newest registration whatever the clocks say.
			peer := r.field()
			ts := int64(r.uint64())
			if !r.bad && !stale(string(peer), ts, n.id) {
				var rooms []string
				var quiet changes
				if old := v.dir[string(peer)]; old != nil && old.node != n {
					for room := range old.rooms {
						rooms = append(rooms, room)
					}
					v.removePeer(old, &quiet)
				}
				if p := v.register(n, string(peer), ts, &quiet); p != nil {
					for _, room := range rooms {
						v.join(p, room, &quiet)
					}
				}
				ch.ups = append(ch.ups, quiet.ups...)
			}
		case recMovedDown:
			if p := n.peers[string(r.field())]; p != nil {
				v.removePeer(p, &changes{})
			}
		case recMovedJoin, recMovedLeave:
			peer, room := r.field(), r.field()
			if r.bad {
				break
			}
			var quiet changes
			p := n.peers[string(peer)]
			if rec == recMovedJoin {
				if p == nil && !stale(string(peer), 0, n.id) {
					p = v.register(n, string(peer), 0, &quiet)
					ch.ups = append(ch.ups, quiet.ups...)
				}
				if p != nil {
					v.join(p, string(room), &quiet)
				}
			} else if p != nil {
				v.leave(p, string(room), &quiet)
			}
		case recBye:
			v.dropNode(n, ch)
			// Nothing may follow: a record after it would land on a node
			// the view no longer knows, and never expire.
			if len(r.b) > 0 {
				r.bad = true
			}
		default:
			r.bad = true
		}
	}
	return ask, hello
}

// ask returns n's inbox if n may be asked for a snapshot now (at most once
// every askEvery), and "" if not. Guarded by mu.
func (v *view) ask(n *remoteNode, now time.Time) string {
	if now.Sub(n.asked) < v.askEvery {
		return ""
	}
	n.asked = now
	return n.inbox
}
