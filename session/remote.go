package session

import (
	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
)

// Remote is the rest of a cluster as session resume sees it
// (docs/protocol.md section 10, clustering; package cluster implements it
// over NATS). Every token names the node that issued it by that node's tag;
// a resume that lands on another node asks the issuing node to hand the
// session over (Handler.HandOver there), and continues it here.
type Remote interface {
	// Tag is this node's tag, written into the tokens it issues. It is
	// fixed for the life of the process.
	Tag() uint32
	// Fetch asks the node tagged tag to hand over the session of token,
	// whose client received the data messages up to received and whose
	// resume request authenticated as peer. Moved.Handoff is nil when that
	// node does not hold such a session, is not known, or did not answer
	// in time; the error is ErrResumeDenied when auth is on and peer is not
	// the session's peer id.
	Fetch(tag uint32, token string, received uint64, peer string) (Moved, error)
}

// Moved is a session handed over by the node that held it: its peer id,
// its rooms and its send path.
type Moved struct {
	Peer    string
	Rooms   []string
	Handoff *conn.Handoff
}

// SetRemote connects the Handler to the other nodes of a cluster, for
// resumes that land on another node than the one holding the session. It is
// called before the first connection.
func (h *Handler) SetRemote(r Remote) {
	h.remote = r
	if h.resume != nil {
		h.resume.tag = r.Tag()
	}
}

// fetch continues here a session that the node tagged tag holds: it takes
// it over (Remote.Fetch), makes its Conn with adopt, registers the peer
// and makes it a member of its rooms, both without peer_joined (the members
// never saw it leave), and returns the session claimed, for Attach.
func (h *Handler) fetch(tag uint32, tok string, received uint64, id auth.Identity, adopt func(string, *conn.Handoff) *conn.Conn) (*Session, error) {
	m, err := h.remote.Fetch(tag, tok, received, id.Peer)
	if err != nil || m.Handoff == nil {
		return nil, err
	}
	c := adopt(m.Peer, m.Handoff)
	s := &Session{h: h, c: c, base: id.Base, rooms: id.Rooms}
	if !h.cfg.BindPeer {
		s.base = m.Peer // auth none: the request named no peer
	}
	g := h.resume
	g.mu.Lock()
	s.state = stateClaimed
	g.mu.Unlock()
	h.router.Adopt(c, m.Rooms)
	return s, nil
}

// HandOver gives up the session of token, which this node issued, to
// another node where its client resumes (Remote.Fetch there): the token is
// used up, an open old connection is closed with 4001 "resumed", and the
// peer leaves this node's registry and rooms without peer_left. It returns
// what the other node needs to continue the session; Moved.Handoff is nil
// when this node holds no such session (resume off, token unknown, used or
// expired, received past what the session sent), and the error is
// ErrResumeDenied when auth is on and peer is not the session's peer id.
// Failures are counted where the client resumes.
func (h *Handler) HandOver(tok string, received uint64, peer string) (Moved, error) {
	g := h.resume
	t, ok := parseToken(tok)
	if g == nil || !ok {
		return Moved{}, nil
	}
	s, err := g.claim(t, peer, h.cfg.BindPeer, received)
	if s == nil {
		return Moved{}, err
	}
	c := s.c
	if !c.Detached() && !c.Takeover(frame.CloseReplaced, "resumed") && !c.Detached() {
		g.onEnded(s) // the old connection is closing for good
		return Moved{}, nil
	}
	rooms := h.router.Release(c)
	hand, ok := c.HandOff()
	g.onEnded(s)
	if !ok {
		return Moved{}, nil
	}
	return Moved{Peer: c.ID, Rooms: rooms, Handoff: hand}, nil
}
