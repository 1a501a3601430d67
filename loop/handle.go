package loop

import (
	"time"
	"unsafe"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/stats"
)

// Error messages sent with each code.
var codeMessages = map[stats.Code]string{
	stats.CodeBadJSON:        "message is not a JSON object with a string type",
	stats.CodeUnknownType:    "unknown message type",
	stats.CodeBadRequest:     "missing or invalid field",
	stats.CodeBadFrame:       "invalid binary header",
	stats.CodeRateLimited:    "rate limit exceeded, messages dropped",
	stats.CodeTypeNotAllowed: "binary content type not allowed or too large",
}

// bstr views b as a string for the duration of a call that does not keep it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// OnMessage handles one complete data message of the connection.
func (h *handler) OnMessage(op byte, p []byte) {
	w := h.w
	if w.done {
		return
	}
	if w.echo {
		h.echo(op, p)
		return
	}
	if op == frame.OpBinary {
		h.binary(p)
		return
	}
	h.text(p)
}

// charge applies the rate limit; false means the message is dropped.
func (h *handler) charge() bool {
	ok, notify, abuse := h.w.Charge()
	if ok {
		return true
	}
	s := h.w.srv
	s.stats.Drop(stats.DropRateLimited, 1)
	if abuse {
		h.w.done = true
		s.stats.Evict(stats.EvictPolicy)
		s.logBadInput("closing rate-limit abuser", h.w)
		h.bt.Flush()
		h.w.CloseWith(1008, "rate limit exceeded")
		return false
	}
	if notify {
		h.fail(stats.CodeRateLimited, nil)
	}
	return false
}

func (h *handler) text(p []byte) {
	w, s, e := h.w, h.w.srv, &h.env
	if err := frame.ScanEnvelope(p, e); err != nil {
		s.stats.Received(stats.KindControl)
		if h.charge() {
			s.logBadInput("bad json", w)
			h.fail(stats.CodeBadJSON, nil)
		}
		return
	}
	kind := stats.KindControl
	switch bstr(e.Type) {
	case "direct":
		kind = stats.KindDirect
	case "publish":
		kind = stats.KindPublish
	case "broadcast":
		kind = stats.KindBroadcast
	}
	s.stats.Received(kind)
	if !h.charge() {
		return
	}
	id := e.ID
	if id != nil && !frame.ValidID(id) {
		h.fail(stats.CodeBadRequest, nil)
		return
	}
	switch bstr(e.Type) {
	case "direct":
		if !frame.ValidPeerID(e.To) || e.Data == nil {
			h.fail(stats.CodeBadRequest, id)
			return
		}
		buf := frame.NewBuf(len(e.Data) + len(w.ID) + 40)
		buf.B = frame.AppendDirect(buf.B, w.ID, e.Data)
		buf.Finish(frame.OpText)
		err := s.router.Direct(bstr(e.To), buf, &h.bt)
		buf.Release()
		h.routed(err, id)
	case "publish":
		if !frame.ValidRoom(e.Room) || e.Data == nil {
			h.fail(stats.CodeBadRequest, id)
			return
		}
		buf := frame.NewBuf(len(e.Data) + len(e.Room) + len(w.ID) + 48)
		buf.B = frame.AppendPublish(buf.B, bstr(e.Room), w.ID, e.Data)
		buf.Finish(frame.OpText)
		err := s.router.Publish(w.Conn, bstr(e.Room), buf, &h.bt)
		buf.Release()
		h.routed(err, id)
	case "broadcast":
		if e.Data == nil {
			h.fail(stats.CodeBadRequest, id)
			return
		}
		buf := frame.NewBuf(len(e.Data) + len(w.ID) + 40)
		buf.B = frame.AppendBroadcast(buf.B, w.ID, e.Data)
		buf.Finish(frame.OpText)
		err := s.router.Broadcast(w.Conn, buf, &h.bt)
		buf.Release()
		h.routed(err, id)
	case "join":
		if !frame.ValidRoom(e.Room) {
			h.fail(stats.CodeBadRequest, id)
			return
		}
		if err := s.router.Join(w.Conn, string(e.Room), &h.bt); err != nil {
			h.refused(err, id)
		}
	case "leave":
		if !frame.ValidRoom(e.Room) {
			h.fail(stats.CodeBadRequest, id)
			return
		}
		if err := s.router.Leave(w.Conn, string(e.Room), &h.bt); err != nil {
			h.refused(err, id)
		}
	case "ping":
		buf := frame.NewBuf(48)
		buf.B = frame.AppendPong(buf.B, time.Now().UnixMilli())
		buf.Finish(frame.OpText)
		h.reply(buf)
	default:
		h.fail(stats.CodeUnknownType, id)
	}
}

// routed answers a routed request: ack when it carried an id, or the error.
func (h *handler) routed(err error, id []byte) {
	if err != nil {
		h.refused(err, id)
		return
	}
	if id != nil {
		buf := frame.NewBuf(len(id) + 24)
		buf.B = frame.AppendAck(buf.B, id)
		buf.Finish(frame.OpText)
		h.reply(buf)
	}
}

func (h *handler) refused(err error, id []byte) {
	if re, ok := err.(*router.Error); ok {
		h.failMsg(re.Code, re.Message, id)
		return
	}
	h.failMsg(stats.CodeBadRequest, err.Error(), id)
}

// fail sends an error with the code's standard message.
func (h *handler) fail(code stats.Code, id []byte) {
	h.failMsg(code, codeMessages[code], id)
}

func (h *handler) failMsg(code stats.Code, msg string, id []byte) {
	h.w.srv.stats.Error(code)
	buf := frame.NewBuf(len(msg) + len(id) + 64)
	buf.B = frame.AppendError(buf.B, code.String(), msg, id)
	buf.Finish(frame.OpText)
	h.reply(buf)
}

// reply queues buf for the sender itself and gives up the caller's reference.
func (h *handler) reply(buf *frame.Buf) {
	if _, flush := h.w.Enqueue(buf); flush {
		h.bt.Add(h.w.Conn)
	}
	buf.Release()
}

func (h *handler) binary(p []byte) {
	w, s := h.w, h.w.srv
	s.stats.Received(stats.KindBinary)
	if !h.charge() {
		return
	}
	payload, err := frame.ParseClientHeader(p, &h.hdr)
	if err != nil {
		s.logBadInput("bad binary header", w, "err", err.Error())
		h.fail(stats.CodeBadFrame, nil)
		return
	}
	hd := &h.hdr
	if len(s.cfg.BinaryTypes) > 0 && !s.cfg.BinaryTypes.Allows(hd.CType, len(payload)) {
		h.fail(stats.CodeTypeNotAllowed, nil)
		return
	}
	to := ""
	if hd.Op == frame.BinPublish {
		to = bstr(hd.To)
	}
	buf := frame.NewBuf(len(payload) + len(w.ID) + len(to) + 8)
	buf.B = frame.AppendServerHeader(buf.B, hd.Op, hd.CType, hd.Flags, w.ID, to)
	buf.B = append(buf.B, payload...)
	buf.Finish(frame.OpBinary)
	switch hd.Op {
	case frame.BinDirect:
		err = s.router.Direct(bstr(hd.To), buf, &h.bt)
	case frame.BinPublish:
		err = s.router.Publish(w.Conn, to, buf, &h.bt)
	default:
		err = s.router.Broadcast(w.Conn, buf, &h.bt)
	}
	buf.Release()
	if err != nil {
		h.refused(err, nil)
	}
}

// echo sends a message back unchanged (the /echo endpoint).
func (h *handler) echo(op byte, p []byte) {
	if !h.charge() {
		return
	}
	buf := frame.NewBuf(len(p))
	buf.B = append(buf.B, p...)
	buf.Finish(op)
	h.reply(buf)
}
