package router

import (
	"hash/maphash"
	"sync"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// MaxJoinedPeers bounds the peers listed in a joined reply.
const MaxJoinedPeers = 1000

const shards = 64

// Options are the routing limits (docs/protocol.md section 7).
type Options struct {
	MaxRoomsPerPeer int  // rooms one peer may join
	MaxRoomPeers    int  // members one room may hold; 0 = no limit
	AllowBroadcast  bool // whether broadcast is enabled
}

// Router is the peer registry and the rooms of one node. Safe for
// concurrent use; the package doc lists its locks and their order.
type Router struct {
	opts  Options
	st    *stats.Stats
	seed  maphash.Seed
	peers [shards]peerShard
	rooms [shards]roomShard
	bp    Backplane // nil on a single node; see SetBackplane
}

type peerShard struct {
	mu sync.RWMutex
	m  map[string]*peer
}

// peer is the router's record of one registered connection: the rooms it
// is in. It lives in the registry from Register until Remove, or until a
// newer connection of the same id replaces it (Register, Evict).
type peer struct {
	conn *conn.Conn // set at construction

	// Guarded by mu.
	mu    sync.Mutex
	rooms []string // the rooms conn is a member of
	gone  bool     // out of the registry and out of its rooms: joins do nothing
}

type roomShard struct {
	mu sync.RWMutex
	m  map[string]*room
}

// room is a set of members kept as a slice for fast fan-out plus an index
// for O(1) removal. Guarded by its shard's lock.
type room struct {
	members []*conn.Conn
	index   map[*conn.Conn]int
}

// New returns an empty router.
func New(opts Options, st *stats.Stats) *Router {
	r := &Router{opts: opts, st: st, seed: maphash.MakeSeed()}
	for i := range r.peers {
		r.peers[i].m = make(map[string]*peer)
		r.rooms[i].m = make(map[string]*room)
	}
	return r
}

func (r *Router) peerShard(id string) *peerShard {
	return &r.peers[maphash.String(r.seed, id)%shards]
}

func (r *Router) roomShard(name string) *roomShard {
	return &r.rooms[maphash.String(r.seed, name)%shards]
}

// Register adds c under its peer id. A peer already connected under that id
// is replaced: it leaves its rooms and is closed with 4001.
func (r *Router) Register(c *conn.Conn) {
	s := r.peerShard(c.ID)
	s.mu.Lock()
	old := s.m[c.ID]
	s.m[c.ID] = &peer{conn: c}
	s.mu.Unlock()
	if old != nil {
		var bt Batch
		r.leaveAll(old, &bt)
		bt.Flush()
		r.st.Evict(stats.EvictReplaced)
		old.conn.CloseWith(frame.CloseReplaced, "replaced")
	}
	if r.bp != nil {
		r.bp.PeerUp(c.ID)
	}
}

// Remove takes c out of the registry and out of every room (peer_left to the
// other members). It is called once when c's socket closed. A connection
// that was replaced left its rooms then: Remove does nothing for it.
func (r *Router) Remove(c *conn.Conn, bt *Batch) {
	s := r.peerShard(c.ID)
	s.mu.Lock()
	p := s.m[c.ID]
	if p == nil || p.conn != c {
		s.mu.Unlock()
		return
	}
	delete(s.m, c.ID)
	s.mu.Unlock()
	r.leaveAll(p, bt)
	if r.bp != nil {
		r.bp.PeerDown(c.ID)
	}
}

// Lookup returns the connection of peer id, or nil.
func (r *Router) Lookup(id string) *conn.Conn {
	s := r.peerShard(id)
	s.mu.RLock()
	p := s.m[id]
	s.mu.RUnlock()
	if p == nil {
		return nil
	}
	return p.conn
}

// record returns the registry's record of c, or nil when c is not (or no
// longer) registered.
func (r *Router) record(c *conn.Conn) *peer {
	s := r.peerShard(c.ID)
	s.mu.RLock()
	p := s.m[c.ID]
	s.mu.RUnlock()
	if p == nil || p.conn != c {
		return nil
	}
	return p
}

// Peers returns the number of registered peers.
func (r *Router) Peers() int {
	n := 0
	for i := range r.peers {
		s := &r.peers[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Each calls f for every registered connection, one shard at a time, without
// holding a lock during f.
func (r *Router) Each(f func(*conn.Conn)) {
	var list []*conn.Conn
	for i := range r.peers {
		s := &r.peers[i]
		s.mu.RLock()
		for _, p := range s.m {
			list = append(list, p.conn)
		}
		s.mu.RUnlock()
		for j, c := range list {
			f(c)
			list[j] = nil
		}
		list = list[:0]
	}
}

// Direct hands buf to peer to.
func (r *Router) Direct(to string, buf *frame.Buf, bt *Batch) error {
	c := r.Lookup(to)
	if c == nil {
		if r.bp != nil {
			switch r.bp.Direct(to, buf) {
			case Sent:
				return nil
			case Lost:
				r.st.Drop(stats.DropClusterSendFailed, 1)
				return ErrNotSent
			}
		}
		r.st.Drop(stats.DropNoRoute, 1)
		return ErrPeerNotFound
	}
	r.deliver(c, buf, bt)
	r.st.Fanout(1)
	return nil
}

func (r *Router) deliver(c *conn.Conn, buf *frame.Buf, bt *Batch) int {
	queued, flush := c.EnqueueFrom(buf, bt.Sender)
	if flush {
		bt.conns = append(bt.conns, c)
	}
	if queued {
		r.st.Delivered(1)
		return 1
	}
	return 0
}

// Publish hands buf to every member of room except from, who must be a member.
func (r *Router) Publish(from *conn.Conn, name string, buf *frame.Buf, bt *Batch) error {
	s := r.roomShard(name)
	s.mu.RLock()
	rm := s.m[name]
	if rm == nil {
		s.mu.RUnlock()
		return ErrNotMember
	}
	if _, ok := rm.index[from]; !ok {
		s.mu.RUnlock()
		return ErrNotMember
	}
	n := r.fanout(rm.members, from, buf, bt)
	recipients := len(rm.members) - 1 // read under the lock: Join and Leave change it
	s.mu.RUnlock()
	var reach Reach
	if r.bp != nil {
		reach = r.bp.Publish(name, buf)
	}
	return r.accountRemote(reach, recipients, n)
}

// accountRemote counts a publish or broadcast that reached recipients local
// peers (queued for n of them) and, as reach says, the other nodes. It
// counts exactly one drop when the message reached no one: no_route when
// there was no one to reach, cluster_send_failed when the cluster did not
// take it; and cluster_send_failed beside the local deliveries when the
// message reached local peers only because the cluster did not take it.
func (r *Router) accountRemote(reach Reach, recipients, n int) error {
	switch {
	case reach == Lost:
		r.st.Drop(stats.DropClusterSendFailed, 1)
		r.st.Fanout(recipients)
		if n > 0 {
			r.st.Delivered(n)
		}
		return ErrNotSent
	case reach == Sent && recipients == 0:
		r.st.Fanout(0) // members on other nodes only: not a no_route drop
		return nil
	}
	r.account(recipients, n)
	return nil
}

// fanout enqueues buf for every member but skip; it returns how many queued it.
func (r *Router) fanout(members []*conn.Conn, skip *conn.Conn, buf *frame.Buf, bt *Batch) int {
	n := 0
	for _, c := range members {
		if c == skip {
			continue
		}
		queued, flush := c.EnqueueFrom(buf, bt.Sender)
		if flush {
			bt.conns = append(bt.conns, c)
		}
		if queued {
			n++
		}
	}
	return n
}

func (r *Router) account(recipients, queued int) {
	r.st.Fanout(recipients)
	if queued > 0 {
		r.st.Delivered(queued)
	}
	if recipients == 0 {
		r.st.Drop(stats.DropNoRoute, 1)
	}
}

// Broadcast hands buf to every connected peer except from.
func (r *Router) Broadcast(from *conn.Conn, buf *frame.Buf, bt *Batch) error {
	if !r.opts.AllowBroadcast {
		return ErrForbidden
	}
	recipients, queued := r.enqueueAll(from, buf, bt)
	var reach Reach
	if r.bp != nil {
		reach = r.bp.Broadcast(buf)
	}
	return r.accountRemote(reach, recipients, queued)
}

// enqueueAll hands buf to every registered peer but skip, one peer shard
// at a time; it returns how many peers it tried and how many queued it.
func (r *Router) enqueueAll(skip *conn.Conn, buf *frame.Buf, bt *Batch) (recipients, queued int) {
	for i := range r.peers {
		s := &r.peers[i]
		s.mu.RLock()
		for _, p := range s.m {
			c := p.conn
			if c == skip {
				continue
			}
			recipients++
			q, flush := c.EnqueueFrom(buf, bt.Sender)
			if flush {
				bt.conns = append(bt.conns, c)
			}
			if q {
				queued++
			}
		}
		s.mu.RUnlock()
	}
	return recipients, queued
}

// Join makes c a member of room name. It queues the joined reply for c and
// peer_joined for the other members. Joining a room c is already in only
// repeats the joined reply. A connection that is no longer registered
// (replaced, evicted or removed) joins nothing.
func (r *Router) Join(c *conn.Conn, name string, bt *Batch) error {
	p := r.record(c)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil
	}
	already := false
	for _, n := range p.rooms {
		if n == name {
			already = true
			break
		}
	}
	if !already && len(p.rooms) >= r.opts.MaxRoomsPerPeer {
		return ErrTooManyRooms
	}
	s := r.roomShard(name)
	s.mu.Lock()
	rm := s.m[name]
	if !already {
		if rm != nil && r.opts.MaxRoomPeers > 0 && len(rm.members) >= r.opts.MaxRoomPeers {
			s.mu.Unlock()
			return ErrRoomFull
		}
		if rm == nil {
			rm = &room{index: make(map[*conn.Conn]int)}
			s.m[name] = rm
			r.st.RoomsChanged(1)
		}
		rm.index[c] = len(rm.members)
		rm.members = append(rm.members, c)
		p.rooms = append(p.rooms, name)
		if r.bp != nil {
			r.bp.Joined(name, c.ID, len(rm.members) == 1)
		}
	}

	// The joined reply lists up to MaxJoinedPeers other members.
	peers := make([]string, 0, min(len(rm.members)-1, MaxJoinedPeers))
	for _, m := range rm.members {
		if m != c && len(peers) < MaxJoinedPeers {
			peers = append(peers, m.ID)
		}
	}
	if r.bp != nil {
		peers = r.bp.AppendMembers(peers, name, MaxJoinedPeers)
	}
	// Sized to fit: with session resume the reply may stay in the replay
	// buffer for a while, and a few peers fit the smallest pooled buffer.
	reply := frame.NewBuf(frame.JoinedLen(name, peers))
	reply.B = frame.AppendJoined(reply.B, name, peers)
	reply.Finish(frame.OpText)
	r.deliverOwn(c, reply, bt)

	if !already && len(rm.members) > 1 {
		note := frame.NewBuf(frame.PresenceLen(name, c.ID))
		note.B = frame.AppendPeerJoined(note.B, name, c.ID)
		note.Finish(frame.OpText)
		r.fanout(rm.members, c, note, bt)
		note.Release()
	}
	s.mu.Unlock()
	return nil
}

// deliverOwn queues a reply for c and gives up the caller's reference.
func (r *Router) deliverOwn(c *conn.Conn, buf *frame.Buf, bt *Batch) {
	if _, flush := c.Enqueue(buf); flush {
		bt.conns = append(bt.conns, c)
	}
	buf.Release()
}

// Leave takes c out of room name, queues the left reply and peer_left for the
// remaining members.
func (r *Router) Leave(c *conn.Conn, name string, bt *Batch) error {
	p := r.record(c)
	if p == nil {
		return ErrNotMember
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	found := false
	for i, n := range p.rooms {
		if n == name {
			last := len(p.rooms) - 1
			p.rooms[i] = p.rooms[last]
			p.rooms[last] = ""
			p.rooms = p.rooms[:last]
			found = true
			break
		}
	}
	if !found {
		return ErrNotMember
	}
	r.removeMember(c, name, bt)
	reply := frame.NewBuf(32 + len(name))
	reply.B = frame.AppendLeft(reply.B, name)
	reply.Finish(frame.OpText)
	r.deliverOwn(c, reply, bt)
	return nil
}

// leaveAll takes p, already out of the registry, out of every room it is
// in and marks it gone. p.mu is held throughout so that a concurrent Join
// of p's connection cannot slip in between, nor after.
func (r *Router) leaveAll(p *peer, bt *Batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range p.rooms {
		r.removeMember(p.conn, name, bt)
	}
	p.rooms = nil
	p.gone = true
}

// removeMember deletes c from room name and tells the remaining members
// through bt; a nil bt tells no one (Release).
func (r *Router) removeMember(c *conn.Conn, name string, bt *Batch) {
	s := r.roomShard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.m[name]
	if rm == nil {
		return
	}
	i, ok := rm.index[c]
	if !ok {
		return
	}
	last := len(rm.members) - 1
	moved := rm.members[last]
	rm.members[i] = moved
	rm.index[moved] = i
	rm.members[last] = nil
	rm.members = rm.members[:last]
	delete(rm.index, c)
	if r.bp != nil {
		r.bp.Left(name, c.ID, len(rm.members) == 0)
	}
	if len(rm.members) == 0 {
		delete(s.m, name)
		r.st.RoomsChanged(-1)
		return
	}
	if bt == nil {
		return
	}
	note := frame.NewBuf(frame.PresenceLen(name, c.ID))
	note.B = frame.AppendPeerLeft(note.B, name, c.ID)
	note.Finish(frame.OpText)
	r.fanout(rm.members, nil, note, bt)
	note.Release()
}

// Rooms returns the number of rooms with at least one member.
func (r *Router) Rooms() int {
	n := 0
	for i := range r.rooms {
		s := &r.rooms[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Members returns the member ids of room name (for tests and diagnostics).
func (r *Router) Members(name string) []string {
	s := r.roomShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	rm := s.m[name]
	if rm == nil {
		return nil
	}
	ids := make([]string, len(rm.members))
	for i, c := range rm.members {
		ids[i] = c.ID
	}
	return ids
}

// RoomsOf returns the rooms c is a member of, in no particular order (a
// resumed session's welcome lists them), or nil when c is not registered.
func (r *Router) RoomsOf(c *conn.Conn) []string {
	p := r.record(c)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.rooms...)
}
