package cluster

import (
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/session"
)

// Session handover (docs/protocol.md section 10, clustering). A resume token
// carries the tag of the node that issued it (Tag). A resume that lands on
// another node asks the issuing node, by a NATS request on its handover
// subject, to hand the session over (Fetch); that node gives it up
// (session.Handler.HandOver) and answers with the peer id, its rooms and its
// send path: numbering, replayable frames and queued frames. Both nodes
// record the move's presence changes as moved records ('u', 'm', 'j', 'l'),
// which the other nodes apply without peer_left or peer_joined. For
// DeadAfter after a handover, direct frames that still reach the old node
// for the peer are forwarded to the new one.
//
// Request (subject <prefix>.handover.<node>):
//
//	'h' token_len token received(8) peer_len peer from_len from
//
// Reply: one status byte, 'n' (no such session) or 'x' (denied: another
// peer's credential), or 'o' followed by
//
//	peer_len peer rooms(2) (room_len room)... sent(8) dropped(8)
//	replay(4) queued(4) (op len(4) body)...
//
// where the frames are the replayable ones, oldest first, then the queued
// ones. Integers are big-endian.
const (
	kindHandover = 'h'

	handoverOK     = 'o'
	handoverNone   = 'n'
	handoverDenied = 'x'

	// handoverTimeout bounds how long a resume waits for the node holding
	// its session; past it the client gets a new session.
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

// Fetch implements session.Remote: it asks the node tagged tag, by a NATS
// request, to hand over the session of token. It waits at most
// handoverTimeout; an unknown node, no answer or a malformed one is no
// session (the client gets a new one).
func (c *Cluster) Fetch(tag uint32, token string, received uint64, peer string) (session.Moved, error) {
	node, ok := c.view.nodeByTag(tag)
	if !ok || len(token) > 255 || len(peer) > 255 {
		return session.Moved{}, nil
	}
	req := make([]byte, 0, 32+len(token)+len(peer)+len(c.id))
	req = appendField(append(req, kindHandover), token)
	req = binary.BigEndian.AppendUint64(req, received)
	req = appendField(appendField(req, peer), c.id)
	msg, err := c.nc.Request(c.subj.handoverSubject(node), req, handoverTimeout)
	if err != nil {
		c.warn.Do(func() { c.log.Warn("cluster session handover failed", "peer_node", node, "err", err) })
		return session.Moved{}, nil
	}
	m, denied, ok := decodeMoved(msg.Data)
	switch {
	case denied:
		return session.Moved{}, session.ErrResumeDenied
	case !ok:
		c.warn.Do(func() { c.log.Warn("cluster session handover malformed", "peer_node", node) })
	}
	return m, nil
}

// serveHandover answers one handover request. nats.go calls it on the
// handover subscription's own goroutine; no lock is held across Respond.
func (c *Cluster) serveHandover(msg *nats.Msg) {
	r := reader{b: msg.Data}
	if r.byte() != kindHandover {
		return
	}
	token := r.field()
	received := r.uint64()
	peer, from := r.field(), r.field()
	if r.bad || len(from) == 0 {
		return
	}
	m, err := c.sessions.HandOver(string(token), received, string(peer))
	var reply []byte
	switch {
	case err != nil:
		reply = []byte{handoverDenied}
	case m.Handoff == nil:
		reply = []byte{handoverNone}
	default:
		c.forward(m.Peer, c.subj.nodeSubject(string(from)))
		reply = appendMoved(nil, m, int(c.nc.MaxPayload())-handoverSlack)
		m.Handoff.Release()
	}
	_ = msg.Respond(reply)
}

// appendMoved appends an 'o' reply carrying m. Frames that would take the
// reply past limit bytes of bodies are left out, oldest first: replayable
// ones first (the client's resume counts them as missed), then queued ones
// (counted as dropped, missed too).
func appendMoved(dst []byte, m session.Moved, limit int) []byte {
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
	}
	dst = appendField(append(dst, handoverOK), m.Peer)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Rooms)))
	for _, room := range m.Rooms {
		dst = appendField(dst, room)
	}
	dst = binary.BigEndian.AppendUint64(dst, h.Sent)
	dst = binary.BigEndian.AppendUint64(dst, dropped)
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
	return dst
}

// decodeMoved decodes a handover reply. denied reports an 'x' reply; ok is
// false when the reply is malformed. A reply that names no session, or is
// malformed, gives a Moved without a Handoff.
func decodeMoved(data []byte) (m session.Moved, denied, ok bool) {
	r := reader{b: data}
	switch r.byte() {
	case handoverNone:
		return m, false, len(r.b) == 0
	case handoverDenied:
		return m, true, len(r.b) == 0
	case handoverOK:
	default:
		return m, false, false
	}
	peer := r.field()
	rooms := make([]string, r.uint16())
	for i := range rooms {
		rooms[i] = string(r.field())
	}
	h := &conn.Handoff{Sent: r.uint64(), Dropped: r.uint64()}
	nReplay, nQueue := r.uint32(), r.uint32()
	if r.bad || len(peer) == 0 || uint64(nReplay)+uint64(nQueue) > uint64(len(r.b))/5 {
		return session.Moved{}, false, false
	}
	if uint64(nReplay) > h.Sent {
		return session.Moved{}, false, false
	}
	h.Replay = make([]*frame.Buf, 0, nReplay)
	h.Queue = make([]*frame.Buf, 0, nQueue)
	for i := uint32(0); i < nReplay+nQueue; i++ {
		op := r.byte()
		n := r.uint32()
		if r.bad || op != frame.OpText && op != frame.OpBinary || uint64(n) > uint64(len(r.b)) {
			h.Release()
			return session.Moved{}, false, false
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
		return session.Moved{}, false, false
	}
	return session.Moved{Peer: string(peer), Rooms: rooms, Handoff: h}, false, true
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
	for id, f := range c.moved {
		if now.After(f.until) {
			delete(c.moved, id)
		}
	}
	c.moved[peer] = forwarding{inbox: inbox, until: now.Add(c.cfg.DeadAfter)}
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
