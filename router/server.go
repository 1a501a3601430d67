package router

import (
	"math"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// DisconnectGrace bounds how long a disconnected peer's queued frames may
// take to reach it before its socket is closed regardless.
const DisconnectGrace = time.Second

// Messages from the server itself (the server API, docs/protocol.md section 12):
// they have no sending connection, so no membership check and no broadcast
// switch apply, and they reach every node of a cluster. Direct serves them
// as it is (it never needed a sender).

// PublishAll hands buf to every member of room name, on this node and, through
// the backplane, on the others. It returns the number of members the frame
// was meant for: the local members plus the remote ones the backplane knows.
func (r *Router) PublishAll(name string, buf *frame.Buf, bt *Batch) int {
	s := r.roomShard(name)
	s.mu.RLock()
	local, queued := 0, 0
	if rm := s.m[name]; rm != nil {
		queued = r.fanout(rm.members, nil, buf, bt)
		local = len(rm.members)
	}
	s.mu.RUnlock()
	remote := 0
	if r.bp != nil {
		if remote = r.bp.RemoteMembers(name); remote > 0 && r.bp.Publish(name, buf) == Lost {
			r.st.Drop(stats.DropClusterSendFailed, 1)
			remote = 0
		}
	}
	r.accountAll(local, remote, queued)
	return local + remote
}

// BroadcastAll hands buf to every peer on this node and on the others,
// whatever Options.AllowBroadcast says. It returns the number of peers the
// frame was meant for.
func (r *Router) BroadcastAll(buf *frame.Buf, bt *Batch) int {
	local, queued := r.enqueueAll(nil, buf, bt)
	remote := 0
	if r.bp != nil {
		if remote = r.bp.RemotePeers(); remote > 0 && r.bp.Broadcast(buf) == Lost {
			r.st.Drop(stats.DropClusterSendFailed, 1)
			remote = 0
		}
	}
	r.accountAll(local, remote, queued)
	return local + remote
}

// accountAll counts a server message: a no_route drop only when no node
// has a recipient.
func (r *Router) accountAll(local, remote, queued int) {
	if remote > 0 && local == 0 {
		r.st.Fanout(0)
		return
	}
	r.account(local, queued)
}

// Disconnect closes peer id's connection with code and reason and ends its
// session, on whichever node it is connected to. The frames already queued
// for the peer go first (for at most DisconnectGrace), so a message sent
// just before arrives before the close; later ones are refused. The peer
// leaves its rooms (peer_left to the members) once its socket is closed, as
// for any close; a detached session ends at once. It returns
// ErrPeerNotFound when no node holds the peer.
func (r *Router) Disconnect(id string, code int, reason string) error {
	if r.DisconnectLocal(id, code, reason) {
		return nil
	}
	if r.bp != nil && r.bp.Disconnect(id, code, reason) {
		return nil
	}
	return ErrPeerNotFound
}

// DisconnectLocal is Disconnect for a peer of this node only (another node
// asked for it); false when the peer is not here.
func (r *Router) DisconnectLocal(id string, code int, reason string) bool {
	c := r.Lookup(id)
	if c == nil {
		return false
	}
	if c.Expire() {
		// A detached session (docs/protocol.md section 10) has no socket to
		// close: it ends here, as when its resume window passes.
		var bt Batch
		r.Remove(c, &bt)
		bt.Flush()
		return true
	}
	closeFrame := frame.NewBuf(2 + len(reason))
	closeFrame.B = append(closeFrame.B, byte(code>>8), byte(code))
	closeFrame.B = append(closeFrame.B, reason...) // at most 123 bytes: the caller checks
	closeFrame.Finish(frame.OpClose)
	c.Shutdown(closeFrame)
	closeFrame.Release()
	// A queue that did not drain in time is discarded, and the close frame
	// written at once; this does nothing when the connection closed already.
	time.AfterFunc(DisconnectGrace, func() { c.CloseWith(code, reason) })
	return true
}

// RoomMembers returns the ids of every member of room name, on this node and
// on the others as the backplane knows them; nil when the room is empty.
func (r *Router) RoomMembers(name string) []string {
	ids := r.Members(name)
	if r.bp != nil {
		ids = r.bp.AppendMembers(ids, name, math.MaxInt)
	}
	return ids
}
