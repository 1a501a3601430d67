package cluster

import (
	"encoding/binary"
	"time"
)

// This node's presence. startPresence, flushPresence and publishPresence
// are guarded by localMu: a message is numbered, built and published under
// it, so the others receive them in the order of the changes.

// startPresence starts the next presence message in c.pbuf.
func (c *Cluster) startPresence() []byte {
	c.seq++
	return appendPresenceHeader(c.pbuf[:0], c.id, c.inc, c.seq)
}

// flushPresence publishes c.pbuf. A failure (NATS unreachable) leaves a gap
// in the sequence; the others then ask for a snapshot.
func (c *Cluster) flushPresence() {
	_ = c.nc.Publish(c.subj.presence, c.pbuf)
	if cap(c.pbuf) > maxScratch {
		c.pbuf = nil
	}
}

// publishPresence publishes a message holding one record without fields.
func (c *Cluster) publishPresence(rec byte) {
	if rec == recHeartbeat {
		c.pbuf = appendPresenceHeader(c.pbuf[:0], c.id, c.inc, c.seq)
	} else {
		c.pbuf = c.startPresence()
	}
	c.pbuf = append(c.pbuf, rec)
	c.flushPresence()
}

func appendRecUp(dst []byte, peer string, ts int64) []byte {
	dst = appendField(append(dst, recUp), peer)
	return binary.BigEndian.AppendUint64(dst, uint64(ts))
}

func appendRecRoom(dst []byte, rec byte, peer, room string) []byte {
	return appendField(appendField(append(dst, rec), peer), room)
}

// publishSnapshot publishes this node's whole presence: every local peer and
// its rooms, between a start and an end record, cut into messages of about
// snapshotChunk bytes. hello asks every other node to answer with its own.
// It takes localMu and publishes every chunk under it. Only the control
// goroutine calls it.
func (c *Cluster) publishSnapshot(hello bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.gen++
	b := binary.BigEndian.AppendUint64(append(c.startPresence(), recSnapStart), c.gen)
	h := byte(0)
	if hello {
		h = 1
	}
	b = append(b, h)
	for id, lp := range c.local {
		if len(b) > snapshotChunk {
			c.pbuf = b
			c.flushPresence()
			b = c.startPresence()
		}
		b = appendRecUp(b, id, lp.ts)
		for _, room := range lp.rooms {
			b = appendRecRoom(b, recJoin, id, room)
		}
	}
	c.pbuf = binary.BigEndian.AppendUint64(append(b, recSnapEnd), c.gen)
	c.flushPresence()
}

// control is the control goroutine, started by Start and stopped by Close.
// It sends heartbeats, expires silent nodes (telling the local members,
// with the view's lock released) and publishes the snapshots that were
// asked for, one at a time.
func (c *Cluster) control() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.Heartbeat / 4)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-c.done:
			return
		case <-c.hello:
			c.publishSnapshot(true)
		case <-c.kick:
			c.publishSnapshot(false)
		case now := <-tick.C:
			if now.Sub(last) >= c.cfg.Heartbeat-c.cfg.Heartbeat/8 {
				last = now
				c.localMu.Lock()
				c.publishPresence(recHeartbeat)
				c.localMu.Unlock()
			}
			var ch changes
			for _, id := range c.view.expire(now.Add(-c.cfg.DeadAfter), &ch) {
				c.log.Warn("cluster node lost", "peer_node", id)
			}
			c.apply(&ch)
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
		case recBye:
			v.dropNode(n, ch)
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
