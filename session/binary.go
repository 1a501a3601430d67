package session

import (
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// binary handles a binary message (docs/protocol.md section 4): the client header
// names the operation and the recipient; the payload is forwarded untouched
// behind a server header naming the sender. Content types outside
// BinaryTypes, or over their size, are refused with type_not_allowed.
func (s *Session) binary(p []byte, sc *Scratch) bool {
	s.h.stats.Received(stats.KindBinary)
	if ok, stop := s.charge(sc); !ok {
		return !stop
	}
	payload, err := frame.ParseClientHeader(p, &sc.hdr)
	if err != nil {
		s.logBadInput("bad binary header", "err", err.Error())
		s.fail(sc, CodeBadFrame, nil)
		return true
	}
	hd := &sc.hdr
	if len(s.h.cfg.BinaryTypes) > 0 && !s.h.cfg.BinaryTypes.Allows(hd.CType, len(payload)) {
		s.fail(sc, CodeTypeNotAllowed, nil)
		return true
	}
	from, to := s.c.ID, ""
	if hd.Op == frame.BinPublish {
		to = bstr(hd.To)
	}
	buf := frame.NewBuf(len(payload) + len(from) + len(to) + 8)
	buf.B = frame.AppendServerHeader(buf.B, hd.Op, hd.CType, hd.Flags, from, to)
	buf.B = append(buf.B, payload...)
	buf.Finish(frame.OpBinary)
	r := s.h.router
	switch hd.Op {
	case frame.BinDirect:
		err = r.Direct(bstr(hd.To), buf, &sc.Batch)
	case frame.BinPublish:
		err = r.Publish(s.c, to, buf, &sc.Batch)
	default:
		err = r.Broadcast(s.c, buf, &sc.Batch)
	}
	buf.Release()
	if err != nil {
		s.refused(sc, err, nil)
	}
	return true
}

// echoBack sends a message back unchanged (the /echo endpoint).
func (s *Session) echoBack(op byte, p []byte, sc *Scratch) bool {
	if ok, stop := s.charge(sc); !ok {
		return !stop
	}
	buf := frame.NewBuf(len(p))
	buf.B = append(buf.B, p...)
	buf.Finish(op)
	s.reply(sc, buf)
	return true
}
