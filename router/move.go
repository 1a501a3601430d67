package router

import "github.com/wsrelay/wsrelay/conn"

// A session resumed on another node of a cluster moves there
// (docs/protocol.md section 10, clustering): Release takes the peer out of
// this node's registry and rooms, Adopt puts it into the other node's, and
// neither tells the members of its rooms, who never saw it leave. Between
// Moving(id, true) and Moving(id, false) the Backplane is told the presence
// changes of a move, which the other nodes apply without telling anyone
// either.

// Moving tells the Backplane that peer id's session is moving between nodes
// (from true until false): its presence changes are a move's, and a
// registration of id on another node meanwhile is the move, not a newer
// connection replacing this one. Release ends it.
func (r *Router) Moving(id string, moving bool) {
	if r.bp != nil {
		r.bp.Moving(id, moving)
	}
}

// Release takes c out of the registry and out of every room without
// peer_left, and returns the rooms it was in. It does nothing, and returns
// nil, when c is not (or no longer) registered.
func (r *Router) Release(c *conn.Conn) []string {
	s := r.peerShard(c.ID)
	s.mu.Lock()
	p := s.m[c.ID]
	if p == nil || p.conn != c {
		s.mu.Unlock()
		return nil
	}
	delete(s.m, c.ID)
	s.mu.Unlock()
	if r.bp != nil {
		r.bp.Moving(c.ID, true)
	}
	p.mu.Lock()
	rooms := p.rooms
	for _, name := range rooms {
		r.removeMember(c, name, nil)
	}
	p.rooms = nil
	p.gone = true
	p.mu.Unlock()
	if r.bp != nil {
		r.bp.PeerDown(c.ID)
		r.bp.Moving(c.ID, false)
	}
	return rooms
}

// Adopt registers c, whose session moved here from another node, and makes
// it a member of rooms, without peer_joined and without a joined reply: the
// client learns its rooms from its welcome. Room limits do not apply: the
// peer was a member already. Like Register, it replaces a connection of the
// same id.
func (r *Router) Adopt(c *conn.Conn, rooms []string) {
	if r.bp != nil {
		r.bp.Moving(c.ID, true)
		defer r.bp.Moving(c.ID, false)
	}
	r.Register(c)
	p := r.record(c)
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return
	}
	for _, name := range rooms {
		if r.addMember(p, c, name) {
			p.rooms = append(p.rooms, name)
		}
	}
}

// addMember makes c a member of room name, silently; false when it was one.
// Called with p.mu held (lock order: peer, then room shard).
func (r *Router) addMember(p *peer, c *conn.Conn, name string) bool {
	s := r.roomShard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.m[name]
	if rm == nil {
		rm = &room{index: make(map[*conn.Conn]int)}
		s.m[name] = rm
		r.st.RoomsChanged(1)
	}
	if _, ok := rm.index[c]; ok {
		return false
	}
	rm.index[c] = len(rm.members)
	rm.members = append(rm.members, c)
	if r.bp != nil {
		r.bp.Joined(name, c.ID, len(rm.members) == 1)
	}
	return true
}
