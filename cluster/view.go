package cluster

import (
	"sync"
	"time"
)

// view is this node's replica of the other nodes' peers and room
// memberships, fed by their presence messages. Safe for concurrent use.
//
// mu is taken only inside view's own methods. The lookups (nodeCount,
// peerNode, peerInbox, roomSubject, appendMembers) take its read lock and
// never wait for the network. The updates (applyPresence, in presence.go,
// from the inbound goroutine; expire from the control goroutine; forgetPeer
// from PeerUp) take it for writing and record in a changes what the router
// must be told; the caller tells it, and makes any NATS call, once mu is
// released. The methods documented "Guarded by mu" are helpers of those,
// called with mu held.
type view struct {
	mu    sync.RWMutex
	nodes map[string]*remoteNode
	dir   map[string]*remotePeer // peer id -> where it is connected now
	rooms map[string]*remoteRoom // room -> members on other nodes
	subj  subjects
	// askEvery is the least time between two snapshot requests to a node.
	askEvery time.Duration
}

// remoteNode is another node as last heard from.
type remoteNode struct {
	id      string
	inbox   string // its <prefix>.node.<id> subject
	inc     uint64 // process incarnation; a new one means a restart
	seq     uint64 // last presence message number seen
	seen    time.Time
	asked   time.Time // last snapshot request sent to it
	gen     uint64    // generation of its current (or last) snapshot
	syncing bool      // between its snapshot's start and end
	peers   map[string]*remotePeer
}

// remotePeer is a peer connected to a remoteNode.
type remotePeer struct {
	id    string
	node  *remoteNode
	ts    int64             // registration time (unix ns) on its node
	mark  uint64            // snapshot generation that last listed it
	rooms map[string]uint64 // room -> generation that last listed it
}

// remoteRoom is the set of a room's members on other nodes.
type remoteRoom struct {
	subject string
	members map[*remotePeer]struct{}
}

// note is a presence change to tell the local members of a room.
type note struct {
	room, peer string
	joined     bool
}

// up is a registration on another node, to compare with a local peer of
// the same id.
type up struct {
	peer, node string
	ts         int64
}

// changes collects what a view update must do once the view's lock is
// released.
type changes struct {
	notes []note
	ups   []up
}

func newView(subj subjects, askEvery time.Duration) *view {
	return &view{
		askEvery: askEvery,
		nodes:    make(map[string]*remoteNode),
		dir:      make(map[string]*remotePeer),
		rooms:    make(map[string]*remoteRoom),
		subj:     subj,
	}
}

// nodeCount returns the number of other nodes in the view. Safe for
// concurrent use; it takes mu's read lock.
func (v *view) nodeCount() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.nodes)
}

// peerNode returns the id of the node peer id is connected to, or "" when
// no other node announced it. Safe for concurrent use; it takes mu's read
// lock.
func (v *view) peerNode(id string) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if p := v.dir[id]; p != nil {
		return p.node.id
	}
	return ""
}

// peerInbox returns the inbox subject of the node peer id is connected to;
// false when no other node announced it. Safe for concurrent use; it takes
// mu's read lock.
func (v *view) peerInbox(id string) (string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if p := v.dir[id]; p != nil {
		return p.node.inbox, true
	}
	return "", false
}

// roomSubject returns the subject of room; false when no other node has a
// member in it. Safe for concurrent use; it takes mu's read lock.
func (v *view) roomSubject(room string) (string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if rr := v.rooms[room]; rr != nil {
		return rr.subject, true
	}
	return "", false
}

// appendMembers appends the ids of room's members on other nodes to dst
// while len(dst) < max, and returns the extended slice. Safe for concurrent
// use; it takes mu's read lock.
func (v *view) appendMembers(dst []string, room string, max int) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if rr := v.rooms[room]; rr != nil {
		for p := range rr.members {
			if len(dst) >= max {
				break
			}
			dst = append(dst, p.id)
		}
	}
	return dst
}

// memberCount returns the number of room's members on other nodes, and
// peerCount the number of peers connected to other nodes. Safe for
// concurrent use; they take mu's read lock.
func (v *view) memberCount(room string) int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if rr := v.rooms[room]; rr != nil {
		return len(rr.members)
	}
	return 0
}

func (v *view) peerCount() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.dir)
}

// nodeByTag returns the id of the node whose incarnation starts with tag
// (Cluster.Tag); false when no node in the view has it. Safe for
// concurrent use; it takes mu's read lock.
func (v *view) nodeByTag(tag uint32) (string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, n := range v.nodes {
		if uint32(n.inc>>32) == tag {
			return n.id, true
		}
	}
	return "", false
}

// forgetPeer forgets the registration of peer id on another node, if any,
// recording in ch the leaves to tell. It takes mu.
func (v *view) forgetPeer(id string, ch *changes) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.dir[id]; p != nil {
		v.removePeer(p, ch)
	}
}

// newer reports whether registration (ts, node) is newer than (ts2, node2):
// later, or as late and from the greater node id, so that two nodes always
// agree on which of two connections wins.
func newer(ts int64, node string, ts2 int64, node2 string) bool {
	return ts > ts2 || ts == ts2 && node > node2
}

// addNode records a node first heard of now. Guarded by mu.
func (v *view) addNode(id string, inc uint64, now time.Time) *remoteNode {
	n := &remoteNode{id: id, inbox: v.subj.nodeSubject(id), inc: inc, seen: now, peers: make(map[string]*remotePeer)}
	v.nodes[id] = n
	return n
}

// dropNode forgets n and every peer on it. Guarded by mu.
func (v *view) dropNode(n *remoteNode, ch *changes) {
	for _, p := range n.peers {
		v.removePeer(p, ch)
	}
	if v.nodes[n.id] == n {
		delete(v.nodes, n.id)
	}
}

// register records peer id on n at ts. A registration of the same id on
// another node is dropped if older; if it is newer, this one is stale and
// ignored (nil). Guarded by mu.
func (v *view) register(n *remoteNode, id string, ts int64, ch *changes) *remotePeer {
	if old := v.dir[id]; old != nil && old.node != n {
		if newer(old.ts, old.node.id, ts, n.id) {
			return nil
		}
		v.removePeer(old, ch)
	}
	p := n.peers[id]
	if p == nil {
		p = &remotePeer{id: id, node: n, rooms: make(map[string]uint64)}
		n.peers[id] = p
	}
	p.ts = ts
	p.mark = n.gen
	v.dir[id] = p
	ch.ups = append(ch.ups, up{peer: id, node: n.id, ts: ts})
	return p
}

// removePeer forgets p and its memberships. Guarded by mu.
func (v *view) removePeer(p *remotePeer, ch *changes) {
	for room := range p.rooms {
		v.leave(p, room, ch)
	}
	if p.node.peers[p.id] == p {
		delete(p.node.peers, p.id)
	}
	if v.dir[p.id] == p {
		delete(v.dir, p.id)
	}
}

// join makes p a member of room. Guarded by mu.
func (v *view) join(p *remotePeer, room string, ch *changes) {
	if _, ok := p.rooms[room]; ok {
		p.rooms[room] = p.node.gen
		return
	}
	p.rooms[room] = p.node.gen
	rr := v.rooms[room]
	if rr == nil {
		rr = &remoteRoom{subject: v.subj.roomSubject(room), members: make(map[*remotePeer]struct{})}
		v.rooms[room] = rr
	}
	rr.members[p] = struct{}{}
	ch.notes = append(ch.notes, note{room: room, peer: p.id, joined: true})
}

// leave takes p out of room. Guarded by mu.
func (v *view) leave(p *remotePeer, room string, ch *changes) {
	if _, ok := p.rooms[room]; !ok {
		return
	}
	delete(p.rooms, room)
	if rr := v.rooms[room]; rr != nil {
		delete(rr.members, p)
		if len(rr.members) == 0 {
			delete(v.rooms, room)
		}
	}
	ch.notes = append(ch.notes, note{room: room, peer: p.id})
}

// sweep ends n's snapshot of generation gen: what it did not list is gone.
// Guarded by mu.
func (v *view) sweep(n *remoteNode, gen uint64, ch *changes) {
	for _, p := range n.peers {
		if p.mark != gen {
			v.removePeer(p, ch)
			continue
		}
		for room, g := range p.rooms {
			if g != gen {
				v.leave(p, room, ch)
			}
		}
	}
}

// expire drops the nodes not heard from since before deadline, recording in
// ch what their peers' departure changes, and returns their ids. It takes
// mu.
func (v *view) expire(deadline time.Time, ch *changes) (dead []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.nodes {
		if n.seen.Before(deadline) {
			dead = append(dead, n.id)
			v.dropNode(n, ch)
		}
	}
	return dead
}
