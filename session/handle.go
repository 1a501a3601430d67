package session

import (
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// charge applies the rate limit; false means the message is dropped. A
// sustained abuser is closed with 1008 and stop is true.
func (s *Session) charge(sc *Scratch) (ok, stop bool) {
	ok, notify, abuse := s.c.Charge()
	if ok {
		return true, false
	}
	st := s.h.stats
	st.Drop(stats.DropRateLimited, 1)
	if abuse {
		st.Evict(stats.EvictPolicy)
		s.logBadInput("closing rate-limit abuser")
		sc.Batch.Flush()
		s.c.CloseWith(1008, "rate limit exceeded")
		return false, true
	}
	if notify {
		s.fail(sc, CodeRateLimited, nil)
	}
	return false, false
}

// text handles a JSON message through the dispatch table.
func (s *Session) text(p []byte, sc *Scratch) bool {
	e := &sc.env
	if err := frame.ScanEnvelope(p, e); err != nil {
		s.h.stats.Received(stats.KindControl)
		ok, stop := s.charge(sc)
		if ok {
			s.logBadInput("bad json")
			s.fail(sc, CodeBadJSON, nil)
		}
		return !stop
	}
	r := lookup(e.Type)
	kind := stats.KindControl
	if r != nil {
		kind = r.kind
	}
	s.h.stats.Received(kind)
	if ok, stop := s.charge(sc); !ok {
		return !stop
	}
	id := e.ID
	if id != nil && !frame.ValidID(id) {
		s.fail(sc, CodeBadRequest, nil)
		return true
	}
	if r == nil {
		s.fail(sc, CodeUnknownType, id)
		return true
	}
	r.handle(s, sc, e, id)
	return true
}

func (s *Session) direct(sc *Scratch, e *frame.Envelope, id []byte) {
	if !frame.ValidPeerID(e.To) || e.Data == nil {
		s.fail(sc, CodeBadRequest, id)
		return
	}
	from := s.c.ID
	buf := frame.NewBuf(len(e.Data) + len(from) + 40)
	buf.B = frame.AppendDirect(buf.B, from, e.Data)
	buf.Finish(frame.OpText)
	err := s.h.router.Direct(bstr(e.To), buf, &sc.Batch)
	buf.Release()
	s.routed(sc, err, id)
}

func (s *Session) publish(sc *Scratch, e *frame.Envelope, id []byte) {
	if !frame.ValidRoom(e.Room) || e.Data == nil {
		s.fail(sc, CodeBadRequest, id)
		return
	}
	from := s.c.ID
	buf := frame.NewBuf(len(e.Data) + len(e.Room) + len(from) + 48)
	buf.B = frame.AppendPublish(buf.B, bstr(e.Room), from, e.Data)
	buf.Finish(frame.OpText)
	err := s.h.router.Publish(s.c, bstr(e.Room), buf, &sc.Batch)
	buf.Release()
	s.routed(sc, err, id)
}

func (s *Session) broadcast(sc *Scratch, e *frame.Envelope, id []byte) {
	if e.Data == nil {
		s.fail(sc, CodeBadRequest, id)
		return
	}
	from := s.c.ID
	buf := frame.NewBuf(len(e.Data) + len(from) + 40)
	buf.B = frame.AppendBroadcast(buf.B, from, e.Data)
	buf.Finish(frame.OpText)
	err := s.h.router.Broadcast(s.c, buf, &sc.Batch)
	buf.Release()
	s.routed(sc, err, id)
}

func (s *Session) join(sc *Scratch, e *frame.Envelope, id []byte) {
	if !frame.ValidRoom(e.Room) || (e.HasToken && e.Token == nil) {
		s.fail(sc, CodeBadRequest, id)
		return
	}
	if code, msg, ok := s.mayJoin(e); !ok {
		s.failMsg(sc, code, msg, id)
		return
	}
	if err := s.h.router.Join(s.c, string(e.Room), &sc.Batch); err != nil {
		s.refused(sc, err, id)
	}
}

// mayJoin applies the room access rules of docs/protocol.md section 11: a join
// that carries a token is decided by the token alone; any other by the
// rooms the credential allows. It allocates only to check a token.
func (s *Session) mayJoin(e *frame.Envelope) (Code, string, bool) {
	if e.Token != nil {
		if err := s.h.tokens.Verify(string(e.Token), s.base, string(e.Room)); err != nil {
			s.logBadInput("room token refused", "room", string(e.Room), "err", err.Error())
			return CodeForbidden, msgRoomToken, false
		}
		return 0, "", true
	}
	if !s.rooms.Allows(e.Room) {
		return CodeForbidden, msgRoomNotAllowed, false
	}
	return 0, "", true
}

func (s *Session) leave(sc *Scratch, e *frame.Envelope, id []byte) {
	if !frame.ValidRoom(e.Room) {
		s.fail(sc, CodeBadRequest, id)
		return
	}
	if err := s.h.router.Leave(s.c, string(e.Room), &sc.Batch); err != nil {
		s.refused(sc, err, id)
	}
}

// ping answers pong. With resume on, "received":N acknowledges the data
// messages up to N: they leave the replay buffer (docs/protocol.md section 10);
// with resume off the field is ignored like any unknown field.
func (s *Session) ping(sc *Scratch, e *frame.Envelope, id []byte) {
	if e.Received != nil && s.h.resume != nil {
		n, ok := frame.ParseCount(e.Received)
		if !ok {
			s.fail(sc, CodeBadRequest, id)
			return
		}
		s.c.Ack(n)
	}
	buf := frame.NewBuf(48)
	buf.B = frame.AppendPong(buf.B, time.Now().UnixMilli())
	buf.Finish(frame.OpText)
	s.reply(sc, buf)
}

// routed answers a routed request: ack when it carried an id, or the error.
func (s *Session) routed(sc *Scratch, err error, id []byte) {
	if err != nil {
		s.refused(sc, err, id)
		return
	}
	if id != nil {
		buf := frame.NewBuf(len(id) + 24)
		buf.B = frame.AppendAck(buf.B, id)
		buf.Finish(frame.OpText)
		s.reply(sc, buf)
	}
}

// refused answers a request the router refused. A message the cluster did
// not take (router.ErrNotSent) gets no answer: no ack, as it did not leave
// the node, and no error, as the protocol has no code for it; the router
// counted it as cluster_send_failed.
func (s *Session) refused(sc *Scratch, err error, id []byte) {
	if err == router.ErrNotSent {
		return
	}
	if code, ok := codeOf(err); ok {
		s.fail(sc, code, id)
		return
	}
	s.failMsg(sc, CodeBadRequest, err.Error(), id)
}

// fail sends an error with the code's standard message.
func (s *Session) fail(sc *Scratch, code Code, id []byte) {
	s.failMsg(sc, code, code.Text(), id)
}

// failMsg is the one place an error is sent and counted.
func (s *Session) failMsg(sc *Scratch, code Code, msg string, id []byte) {
	s.h.errors[code].Inc()
	buf := frame.NewBuf(len(msg) + len(id) + 64)
	buf.B = frame.AppendError(buf.B, code.String(), msg, id)
	buf.Finish(frame.OpText)
	s.reply(sc, buf)
}

// reply queues buf for the peer itself and gives up the caller's reference.
// The peer is flushed with the rest of the pass's batch.
func (s *Session) reply(sc *Scratch, buf *frame.Buf) {
	if _, flush := s.c.Enqueue(buf); flush {
		sc.Batch.Add(s.c)
	}
	buf.Release()
}
