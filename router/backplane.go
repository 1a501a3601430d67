package router

import (
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// Backplane carries routed frames and presence to the other nodes of a
// cluster (package cluster implements it over NATS). A Router without one is
// a single node and pays nothing for the seam but a nil check.
//
// The Router calls the presence methods (PeerUp, PeerDown, Joined, Left) in
// the order the changes happen; Joined and Left are called under the room's
// shard lock, so for one room they are strictly ordered. Only PeerUp, called
// without any Router lock held, may call back into the Router (to tell local
// members that a replaced connection elsewhere left); none may block for
// long: they run on the goroutine that routes a client's messages.
//
// The frame methods (Direct, Publish, Broadcast) send buf's body as built
// once by the caller; they neither keep buf nor its bytes after returning,
// and report with a Reach what became of the frame. The Router counts a
// Lost frame (cluster_send_failed) and answers its sender with ErrNotSent.
type Backplane interface {
	// PeerUp announces that peer id registered on this node, replacing any
	// older connection of that id on another node.
	PeerUp(id string)
	// PeerDown announces that peer id left this node.
	PeerDown(id string)
	// Joined announces that local peer joined room; first is true when
	// peer is the room's first local member.
	Joined(room, peer string, first bool)
	// Left announces that local peer left room; last is true when no
	// local member remains.
	Left(room, peer string, last bool)
	// AppendMembers appends the ids of room's members on other nodes to
	// dst while len(dst) < max, and returns the extended slice.
	AppendMembers(dst []string, room string, max int) []string
	// Direct sends buf to peer to on another node; Unreached when no node
	// holds it.
	Direct(to string, buf *frame.Buf) Reach
	// Publish sends buf to room's members on other nodes; Unreached when
	// there are none.
	Publish(room string, buf *frame.Buf) Reach
	// Broadcast sends buf to every peer on other nodes; Unreached when no
	// other node is known.
	Broadcast(buf *frame.Buf) Reach

	// RemoteMembers returns how many members room has on other nodes, and
	// RemotePeers how many peers are connected to other nodes, as far as
	// this node knows.
	RemoteMembers(room string) int
	RemotePeers() int
	// Moving(id, true) says that the presence changes of peer id that
	// follow, up to Moving(id, false), move its session between nodes
	// (Release, Adopt): the other nodes must not tell anyone, and a
	// registration of id on another node meanwhile is the move, which does
	// not replace the local connection.
	Moving(id string, moving bool)
	// Disconnect asks the node that holds peer id to close its connection
	// with code and reason (Router.DisconnectLocal there); false when no
	// other node holds it.
	Disconnect(id string, code int, reason string) bool
}

// Reach is what a Backplane did with a frame.
type Reach uint8

const (
	// Unreached: no other node holds a recipient; nothing was sent.
	Unreached Reach = iota
	// Sent: the frame was handed to the cluster for the other nodes.
	Sent
	// Lost: another node holds a recipient, but the cluster did not take
	// the frame (NATS unreachable, its buffer full, the frame over its
	// payload limit). The frame did not leave this node.
	Lost
)

// SetBackplane connects the router to the other nodes of a cluster. It must
// be called before the router is used, and at most once.
func (r *Router) SetBackplane(bp Backplane) { r.bp = bp }

// DeliverDirect hands a frame that another node routed to local peer to.
// A peer that is not (or no longer) here is a no_route drop.
func (r *Router) DeliverDirect(to string, buf *frame.Buf, bt *Batch) {
	c := r.Lookup(to)
	if c == nil {
		r.st.Drop(stats.DropNoRoute, 1)
		return
	}
	r.deliver(c, buf, bt)
	r.st.Fanout(1)
}

// DeliverRoom hands a frame that another node published in room to every
// local member. The sender's membership was checked where it is connected.
func (r *Router) DeliverRoom(name string, buf *frame.Buf, bt *Batch) {
	s := r.roomShard(name)
	s.mu.RLock()
	rm := s.m[name]
	if rm == nil {
		s.mu.RUnlock()
		return
	}
	n := r.fanout(rm.members, nil, buf, bt)
	recipients := len(rm.members)
	s.mu.RUnlock()
	r.st.Fanout(recipients)
	if n > 0 {
		r.st.Delivered(n)
	}
}

// DeliverAll hands a frame that another node broadcast to every local peer.
// The broadcast switch was checked where the sender is connected.
func (r *Router) DeliverAll(buf *frame.Buf, bt *Batch) {
	recipients, queued := r.enqueueAll(nil, buf, bt)
	r.st.Fanout(recipients)
	if queued > 0 {
		r.st.Delivered(queued)
	}
}

// RemoteJoined tells the local members of room that peer, connected to
// another node, joined it.
func (r *Router) RemoteJoined(name, peer string, bt *Batch) {
	r.remoteNote(name, peer, true, bt)
}

// RemoteLeft tells the local members of room that peer, connected to
// another node, left it (or its node is gone).
func (r *Router) RemoteLeft(name, peer string, bt *Batch) {
	r.remoteNote(name, peer, false, bt)
}

func (r *Router) remoteNote(name, peer string, joined bool, bt *Batch) {
	local := r.Lookup(peer)
	s := r.roomShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	rm := s.m[name]
	if rm == nil {
		return
	}
	if _, ok := rm.index[local]; ok && local != nil {
		// A connection of that id here is a member: its own join and leave
		// speak for it (the remote one was replaced by it, or is about to be).
		return
	}
	note := frame.NewBuf(frame.PresenceLen(name, peer))
	if joined {
		note.B = frame.AppendPeerJoined(note.B, name, peer)
	} else {
		note.B = frame.AppendPeerLeft(note.B, name, peer)
	}
	note.Finish(frame.OpText)
	r.fanout(rm.members, nil, note, bt)
	note.Release()
}

// Evict closes the local connection of peer id with 4001 because a newer
// connection of that id registered on another node. The peer leaves its
// rooms (peer_left to the local members) and its id is freed here.
func (r *Router) Evict(id string) {
	s := r.peerShard(id)
	s.mu.Lock()
	p := s.m[id]
	if p != nil {
		delete(s.m, id)
	}
	s.mu.Unlock()
	if p == nil {
		return
	}
	var bt Batch
	r.leaveAll(p, &bt)
	bt.Flush()
	if r.bp != nil {
		r.bp.PeerDown(id)
	}
	r.st.Evict(stats.EvictReplaced)
	p.conn.CloseWith(frame.CloseReplaced, "replaced")
}
