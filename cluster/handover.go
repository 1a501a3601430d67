package cluster

import (
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// Session handover (docs/protocol.md section 10, clustering; session.Remote
// says why in two steps). A resume token carries the tag of the node that
// issued it (Tag). A resume that lands on another node asks the issuing
// node, by a NATS request on its handover subject, to prepare the handover
// (Prepare): that node claims the session and answers with the peer id and
// its rooms. The resuming node registers the peer and joins its rooms,
// waits until its room subscriptions are in place (sync), and asks for the
// commit (Commit): the old node gives the session up and answers with its
// numbering, replayable frames and queue. Both nodes record the move's
// presence changes as moved records ('u', 'm', 'j', 'l'), which the other
// nodes apply without peer_left or peer_joined. For DeadAfter after a
// handover, direct frames that still reach the old node for the peer are
// forwarded to the new one.
//
// Requests (subject <prefix>.handover.<node>):
//
//	'h' token_len token received(8) peer_len peer   prepare
//	'c' id(8) from_len from                         commit
//
// Replies begin with one status byte: 'n' (no such session or handover) or
// 'x' (denied: another peer's credential), or 'o' followed, for a prepare,
// by
//
//	id(8) peer_len peer rooms(2) (room_len room)...
//
// and, for a commit, by
//
//	peer_len peer sent(8) dropped(8) mark(8) replay(4) queued(4)
//	(op len(4) body)...
//
// where the frames are the replayable ones, oldest first, then the queued
// ones. Integers are big-endian.
const (
	kindPrepare = 'h'
	kindCommit  = 'c'

	handoverOK     = 'o'
	handoverNone   = 'n'
	handoverDenied = 'x'

	// handoverTimeout bounds how long a resume waits for each answer of
	// the node holding its session; past it the client gets a new session.
	handoverTimeout = time.Second
	// handoverSlack is what a reply keeps free under NATS's max_payload
	// for everything but frame bodies.
	handoverSlack = 16 << 10
)

// Tag implements session.Remote: the first 32 bits of the process's random
// incarnation, which the other nodes learn from its presence messages.
func (c *Cluster) Tag() uint32 { return uint32(c.inc >> 32) }

// ServeSessions makes the node answer the other nodes' handover requests
// for the sessions of h. It is called before Start.
func (c *Cluster) ServeSessions(h *session.Handler) { c.sessions = h }

// Prepare implements session.Remote: it asks the node tagged tag, by a NATS
// request, to begin handing over the session of token. It waits at most
// handoverTimeout; an unknown node, no answer or a malformed one is no
// session (the client gets a new one).
func (c *Cluster) Prepare(tag uint32, token string, received uint64, peer string) (session.Prepared, error) {
	node, ok := c.view.nodeByTag(tag)
	if !ok || len(token) > 255 || len(peer) > 255 {
		return session.Prepared{}, nil
	}
	req := make([]byte, 0, 16+len(token)+len(peer))
	req = appendField(append(req, kindPrepare), token)
	req = binary.BigEndian.AppendUint64(req, received)
	req = appendField(req, peer)
	data, ok := c.request(node, req)
	if !ok {
		return session.Prepared{}, nil
	}
	r := reader{b: data}
	switch r.byte() {
	case handoverDenied:
		return session.Prepared{}, session.ErrResumeDenied
	case handoverOK:
	default:
		return session.Prepared{}, nil
	}
	p := session.Prepared{Node: node, ID: r.uint64(), Peer: string(r.field())}
	p.Rooms = make([]string, r.uint16())
	for i := range p.Rooms {
		p.Rooms[i] = string(r.field())
	}
	if r.bad || len(r.b) > 0 || p.Peer == "" {
		c.warn.Do(func() { c.log.Warn("cluster session handover malformed", "peer_node", node) })
		return session.Prepared{}, nil
	}
	return p, nil
}

// Commit implements session.Remote: once the subscriptions the peer's
// rooms need are in place (sync), it asks the node that prepared p to hand
// the session over.
func (c *Cluster) Commit(p session.Prepared) session.Moved {
	c.sync()
	req := binary.BigEndian.AppendUint64([]byte{kindCommit}, p.ID)
	req = appendField(req, c.id)
	data, ok := c.request(p.Node, req)
	if !ok {
		return session.Moved{}
	}
	m, ok := decodeMoved(data)
	if !ok {
		c.warn.Do(func() { c.log.Warn("cluster session handover malformed", "peer_node", p.Node) })
	}
	// Every message for the peer that reached the old node before it let
	// go came to this node before the answer did; the inbound goroutine
	// delivers them before the barrier, so that Merge sees them.
	c.barrier()
	return m
}

// barrier waits, at most handoverTimeout, until the inbound goroutine has
// handled every message nats.go gave it so far.
func (c *Cluster) barrier() {
	m := &nats.Msg{} // no Sub: not from nats.go
	done := make(chan struct{})
	c.barriers.Store(m, done)
	defer c.barriers.Delete(m)
	t := time.NewTimer(handoverTimeout)
	defer t.Stop()
	select {
	case c.msgs <- m:
	case <-t.C:
		return
	case <-c.done:
		return
	}
	select {
	case <-done:
	case <-t.C:
	case <-c.done:
	}
}

// request sends req to node's handover subject and returns the reply.
func (c *Cluster) request(node string, req []byte) ([]byte, bool) {
	msg, err := c.nc.Request(c.subj.handoverSubject(node), req, handoverTimeout)
	if err != nil {
		c.warn.Do(func() { c.log.Warn("cluster session handover failed", "peer_node", node, "err", err) })
		return nil, false
	}
	return msg.Data, true
}

// sync waits until the control goroutine has carried out the outbox
// recorded so far and NATS has confirmed it (the subscriptions are in
// place), at most handoverTimeout.
func (c *Cluster) sync() {
	done := make(chan struct{})
	t := time.NewTimer(handoverTimeout)
	defer t.Stop()
	select {
	case c.syncs <- done:
	case <-t.C:
		return
	case <-c.done:
		return
	}
	select {
	case <-done:
	case <-t.C:
	case <-c.done:
	}
}

// serveHandover answers one handover request. The inbound goroutine calls
// it in arrival order, so a session is handed over after every frame that
// reached this node for it before the commit; as the inbound goroutine makes
// no NATS call, the answer is sent by a goroutine of its own (one per
// handover, not per message).
func (c *Cluster) serveHandover(msg *nats.Msg) {
	r := reader{b: msg.Data}
	var reply []byte
	switch r.byte() {
	case kindPrepare:
		token := r.field()
		received := r.uint64()
		peer := r.field()
		if r.bad || len(r.b) > 0 {
			return
		}
		p, err := c.sessions.BeginHandOver(string(token), received, string(peer))
		switch {
		case err != nil:
			reply = []byte{handoverDenied}
		case p.Peer == "":
			reply = []byte{handoverNone}
		default:
			reply = binary.BigEndian.AppendUint64([]byte{handoverOK}, p.ID)
			reply = appendField(reply, p.Peer)
			reply = binary.BigEndian.AppendUint16(reply, uint16(len(p.Rooms)))
			for _, room := range p.Rooms {
				reply = appendField(reply, room)
			}
		}
	case kindCommit:
		id := r.uint64()
		from := r.field()
		if r.bad || len(r.b) > 0 || len(from) == 0 {
			return
		}
		m := c.sessions.HandOver(id)
		if m.Handoff == nil {
			reply = []byte{handoverNone}
			break
		}
		c.forward(m.Peer, c.subj.nodeSubject(string(from)))
		var lost int
		reply, lost = appendMoved(nil, m, int(c.nc.MaxPayload())-handoverSlack)
		if lost > 0 {
			// Over NATS's payload limit: lost like any frame over it.
			c.st.Drop(stats.DropClusterSendFailed, lost)
		}
		m.Handoff.Release()
	default:
		return
	}
	go func() { _ = msg.Respond(reply) }()
}

// appendMoved appends an 'o' reply carrying m. Frames that would take the
// reply past limit bytes of bodies are left out, oldest first: replayable
// ones first (the client's resume counts them as missed), then queued ones
// (part of missed too), whose number it returns: they never reach the
// client, and the caller counts them.
func appendMoved(dst []byte, m session.Moved, limit int) (_ []byte, lost int) {
	h := m.Handoff
	size := 0
	for _, b := range h.Replay {
		size += len(b.Body())
	}
	for _, b := range h.Queue {
		size += len(b.Body())
	}
	replay, queue := h.Replay, h.Queue
	dropped := h.Dropped
	for size > limit && len(replay) > 0 {
		size -= len(replay[0].Body())
		replay = replay[1:]
	}
	for size > limit && len(queue) > 0 {
		size -= len(queue[0].Body())
		queue = queue[1:]
		dropped++
		lost++
	}
	dst = appendField(append(dst, handoverOK), m.Peer)
	dst = binary.BigEndian.AppendUint64(dst, h.Sent)
	dst = binary.BigEndian.AppendUint64(dst, dropped)
	dst = binary.BigEndian.AppendUint64(dst, m.Mark)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(replay)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(queue)))
	for _, list := range [2][]*frame.Buf{replay, queue} {
		for _, b := range list {
			body := b.Body()
			dst = append(dst, b.Bytes()[0]&0x0F)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
			dst = append(dst, body...)
		}
	}
	return dst, lost
}

// decodeMoved decodes a commit's reply; ok is false when it is malformed.
// A reply that names no session, or is malformed, gives a Moved without a
// Handoff.
func decodeMoved(data []byte) (m session.Moved, ok bool) {
	r := reader{b: data}
	switch r.byte() {
	case handoverNone:
		return m, len(r.b) == 0
	case handoverOK:
	default:
		return m, false
	}
	peer := r.field()
	h := &conn.Handoff{Sent: r.uint64(), Dropped: r.uint64()}
	mark := r.uint64()
	nReplay, nQueue := r.uint32(), r.uint32()
	if r.bad || len(peer) == 0 || uint64(nReplay)+uint64(nQueue) > uint64(len(r.b))/5 || uint64(nReplay) > h.Sent {
		return session.Moved{}, false
	}
	h.Replay = make([]*frame.Buf, 0, nReplay)
	h.Queue = make([]*frame.Buf, 0, nQueue)
	for i := uint32(0); i < nReplay+nQueue; i++ {
		op := r.byte()
		n := r.uint32()
		if r.bad || op != frame.OpText && op != frame.OpBinary || uint64(n) > uint64(len(r.b)) {
			h.Release()
			return session.Moved{}, false
		}
		b := frame.NewBuf(int(n))
		b.B = append(b.B, r.b[:n]...)
		b.Finish(op)
		r.b = r.b[n:]
		if i < nReplay {
			h.Replay = append(h.Replay, b)
		} else {
			h.Queue = append(h.Queue, b)
		}
	}
	if len(r.b) > 0 {
		h.Release()
		return session.Moved{}, false
	}
	return session.Moved{Peer: string(peer), Handoff: h, Mark: mark}, true
}

// forwarding is where the direct frames for a peer whose session moved to
// another node go, until when.
type forwarding struct {
	inbox string
	until time.Time
}

// forward records that peer's session moved to the node of inbox: for
// DeadAfter, the direct frames that still reach this node for it (sent
// before the others learned of the move) go there.
func (c *Cluster) forward(peer, inbox string) {
	now := time.Now()
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.moved[peer] = forwarding{inbox: inbox, until: now.Add(c.cfg.DeadAfter)}
	c.pruneMovedLocked(now)
}

// pruneMoved forgets the forwardings that ended, so that inbound directs go
// back to costing no lock (movedAny) once no session moved away lately.
// The control goroutine calls it at every tick.
func (c *Cluster) pruneMoved(now time.Time) {
	if c.movedAny.Load() == 0 {
		return
	}
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.pruneMovedLocked(now)
}

// pruneMovedLocked is pruneMoved; guarded by localMu.
func (c *Cluster) pruneMovedLocked(now time.Time) {
	for id, f := range c.moved {
		if now.After(f.until) {
			delete(c.moved, id)
		}
	}
	c.movedAny.Store(int32(len(c.moved)))
}

// forwardInbox returns the inbox of the node peer's session moved to, if
// it moved from this node within DeadAfter. Guarded by localMu.
func (c *Cluster) forwardInbox(peer string) (string, bool) {
	f, ok := c.moved[peer]
	if !ok || time.Now().After(f.until) {
		return "", false
	}
	return f.inbox, true
}
