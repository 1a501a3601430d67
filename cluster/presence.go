package cluster

import "time"

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
