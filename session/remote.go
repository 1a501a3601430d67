package session

import (
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/router"
)

// Remote is the rest of a cluster as session resume sees it
// (docs/protocol.md section 10, clustering; package cluster implements it
// over NATS). Every token names the node that issued it by that node's tag.
// A resume that lands on another node moves the session here in two steps,
// so that no message routed to the peer meanwhile is lost:
//
//  1. Prepare: the node holding the session claims it (the token is used
//     up, an open old connection is closed with 4001 "resumed") and tells
//     its peer id and rooms; it goes on queuing the peer's messages.
//  2. This node registers the peer and makes it a member of its rooms,
//     silently, so that the peer's messages now reach both nodes.
//  3. Commit: once this node receives the rooms' messages, the old node
//     gives the session up (Handler.HandOver there) and sends its
//     numbering, replayable frames and queue; the messages that reached
//     both nodes meanwhile are kept once (conn.Conn.Merge).
type Remote interface {
	// Tag is this node's tag, written into the tokens it issues. It is
	// fixed for the life of the process.
	Tag() uint32
	// Prepare asks the node tagged tag to begin handing over the session of
	// token, whose client received the data messages up to received and
	// whose resume request authenticated as peer. Prepared.Peer is empty
	// when that node does not hold such a session, is not known, or did not
	// answer in time; the error is ErrResumeDenied when auth is on and peer
	// is not the session's peer id.
	Prepare(tag uint32, token string, received uint64, peer string) (Prepared, error)
	// Commit makes the node that prepared p hand the session over, once
	// this node receives the messages of the peer's rooms. Moved.Handoff is
	// nil when it did not (the handover timed out there, or the node is
	// gone).
	Commit(p Prepared) Moved
}

// Prepared is a handover begun by the node holding a session: the peer id
// and rooms, and what Commit needs to finish it.
type Prepared struct {
	Peer  string
	Rooms []string
	Node  string // the node holding the session
	ID    uint64 // the handover, on that node
}

// Moved is a session handed over by the node that held it: its peer id, its
// send path, and the number of the last message it had queued when the
// handover was prepared (conn.Conn.Merge).
type Moved struct {
	Peer    string
	Handoff *conn.Handoff
	Mark    uint64
}

// handoverWait is how long a prepared handover waits for its commit; then
// the session waits detached again, for a resume with a new token.
const handoverWait = 5 * time.Second

// handover is a session this node is handing over.
type handover struct {
	s     *Session
	mark  uint64
	timer *time.Timer
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

// fetch moves here a session that the node tagged tag holds (Remote): it
// makes its Conn with adopt, registers the peer and makes it a member of its
// rooms without peer_joined (the members never saw it leave), completes the
// Conn with what the old node handed over, and returns the session claimed,
// for Attach. It returns nil when the session could not be moved: the
// client gets a new session.
func (h *Handler) fetch(tag uint32, tok string, received uint64, id auth.Identity, adopt func(string, *conn.Handoff) *conn.Conn) (*Session, error) {
	p, err := h.remote.Prepare(tag, tok, received, id.Peer)
	if err != nil || p.Peer == "" {
		return nil, err
	}
	c := adopt(p.Peer, &conn.Handoff{})
	s := &Session{h: h, c: c, base: id.Base, rooms: id.Rooms}
	if !h.cfg.BindPeer {
		s.base = p.Peer // auth none: the request named no peer
	}
	g := h.resume
	g.mu.Lock()
	s.state = stateClaimed
	g.mu.Unlock()
	h.router.Adopt(c, p.Rooms)
	m := h.remote.Commit(p)
	if m.Handoff == nil || !c.Merge(m.Handoff, m.Mark) {
		// The old node kept the session (or lost it): the peer leaves
		// here again, and the client starts anew.
		c.Expire()
		var bt router.Batch
		h.router.Remove(c, &bt)
		bt.Flush()
		g.onEnded(s)
		return nil, nil
	}
	return s, nil
}

// BeginHandOver begins handing over the session of token, which this node
// issued, to another node where its client resumes (Remote.Prepare there):
// the token is used up, an open old connection is closed with 4001
// "resumed", and the session goes on queuing the peer's messages until
// HandOver, or until handoverWait passes and it waits detached again. It
// returns the peer id and rooms, with the handover's ID; Prepared.Peer is
// empty when this node holds no such session (resume off, token unknown,
// used or expired, received past what the session sent), and the error is
// ErrResumeDenied when auth is on and peer is not the session's peer id.
// Failures are counted where the client resumes.
func (h *Handler) BeginHandOver(tok string, received uint64, peer string) (Prepared, error) {
	g := h.resume
	t, ok := parseToken(tok)
	if g == nil || !ok {
		return Prepared{}, nil
	}
	s, err := g.claim(t, peer, h.cfg.BindPeer, received)
	if s == nil {
		return Prepared{}, err
	}
	if !g.detach(s) {
		return Prepared{}, nil
	}
	c := s.c
	// The other node registers the peer before the commit: this node must
	// take that for the move it is, not for a newer connection replacing
	// this one.
	h.router.Moving(c.ID, true)
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	id := binary.LittleEndian.Uint64(raw[:])
	hv := &handover{s: s, mark: c.Numbered()}
	g.mu.Lock()
	g.moving[id] = hv
	hv.timer = time.AfterFunc(handoverWait, func() { h.abandonHandOver(id) })
	g.mu.Unlock()
	return Prepared{Peer: c.ID, Rooms: h.router.RoomsOf(c), ID: id}, nil
}

// HandOver gives up the session of the handover id (BeginHandOver): the
// peer leaves this node's registry and rooms without peer_left, and its send
// path leaves with the returned Moved. Moved.Handoff is nil when there is
// no such handover (it timed out).
func (h *Handler) HandOver(id uint64) Moved {
	g := h.resume
	if g == nil {
		return Moved{}
	}
	g.mu.Lock()
	hv := g.moving[id]
	delete(g.moving, id)
	g.mu.Unlock()
	if hv == nil {
		return Moved{}
	}
	hv.timer.Stop()
	c := hv.s.c
	h.router.Release(c) // ends the move's presence too
	hand, ok := c.HandOff()
	g.onEnded(hv.s)
	if !ok {
		return Moved{}
	}
	return Moved{Peer: c.ID, Handoff: hand, Mark: hv.mark}
}

// abandonHandOver ends a handover whose commit did not come: the session
// waits detached again, until its window passes.
func (h *Handler) abandonHandOver(id uint64) {
	g := h.resume
	g.mu.Lock()
	hv := g.moving[id]
	delete(g.moving, id)
	g.mu.Unlock()
	if hv == nil {
		return
	}
	h.router.Moving(hv.s.c.ID, false)
	hv.s.Abandon()
}
