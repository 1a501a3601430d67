package main

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"

	"github.com/wsrelay/wsrelay/frame"
)

// The load client is deliberately lean: one nbio engine per process with a
// single poller goroutine reads every connection, a connection is a small
// struct, frames are parsed in place and client frames are built with a zero
// masking key (legal: the key only has to be present), so a process holds
// tens of thousands of connections with a handful of goroutines.

// errHandshake marks a connection that never got its welcome for the
// server's doing: the upgrade was refused, or the socket closed before the
// welcome (not counting closes the harness asked for).
var errHandshake = errors.New("handshake failed")

// Connection states.
const (
	stHandshake int32 = iota // upgrade request sent, waiting for 101
	stWelcome                // upgraded, waiting for the welcome
	stJoining                // join sent, waiting for joined
	stReady                  // usable
	stClosed
)

// wsConn is one load-client connection. Its fields are owned by the poller
// goroutine, except state and reported (atomic) and the fields set before
// the upgrade request is written (dial), which are read-only afterwards.
type wsConn struct {
	// Set by dial before the upgrade request is written.
	eng   *engine
	nc    *nbio.Conn
	peer  string
	room  string       // joined after the welcome, when not empty
	ready chan<- error // receives one value: nil when usable, or the failure
	rp    *resumePeer  // the resume scenario's session this connection serves, if any

	state    atomic.Int32
	reported atomic.Bool // the value for ready was sent
	// Owned by the poller.
	pend []byte // a partial frame or handshake response, nil when none
}

// engine is a process's client event loop plus what every connection reports
// to: delivery latency, counts, handshake errors.
type engine struct {
	nb   *nbio.Engine
	hist *histogram // guarded by histMu
	// histMu is only taken by the poller and by the reporter.
	histMu sync.Mutex

	recv     atomic.Int64 // routed messages received (publish, direct, broadcast, binary)
	other    atomic.Int64 // other server messages (presence, acks, errors)
	overflow atomic.Int64 // overflow notices
	dropped  atomic.Int64 // messages the relay reported dropped (sum of overflow.dropped)
	errs     atomic.Int64 // error messages from the relay
	closed   atomic.Int64 // connections the relay closed while we wanted them open
	firstRcv atomic.Int64 // unix ns of the first routed message received
	lastRcv  atomic.Int64 // unix ns of the last routed message received
	pings    atomic.Int64 // server pings answered
	deflated atomic.Int64 // frames received compressed (RSV1)

	// offerDeflate: new connections offer permessage-deflate.
	offerDeflate atomic.Bool
	// Owned by the poller: inflates the start of compressed frames.
	zr   io.ReadCloser // a flate.Resetter
	zsrc bytes.Reader
	zout [320]byte

	closing atomic.Bool // we are closing connections on purpose
	// published orders a connection's setup before the poller reads it,
	// for the race detector (the socket orders them in fact).
	published atomic.Uint64
}

func newEngine(name string) (*engine, error) {
	e := &engine{hist: newHistogram()}
	e.nb = nbio.NewEngine(nbio.Config{
		Name:           name,
		NPoller:        1,
		ReadBufferSize: 64 << 10,
	})
	e.nb.OnData(e.onData)
	e.nb.OnClose(func(c *nbio.Conn, cerr error) {
		w, _ := c.Session().(*wsConn)
		if w == nil {
			return
		}
		if w.rp != nil {
			w.rp.closed(w, cerr)
			return
		}
		prev := w.state.Swap(stClosed)
		if prev != stClosed && !e.closing.Load() {
			e.closed.Add(1)
		}
		if prev == stHandshake || prev == stWelcome {
			w.report(fmt.Errorf("%w: closed before the welcome (state %d): %v", errHandshake, prev, cerr))
			return
		}
		w.report(fmt.Errorf("closed during setup (state %d): %v", prev, cerr))
	})
	if err := e.nb.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *engine) stop() { e.nb.Stop() }

// reset clears the delivery counters and the latency histogram.
func (e *engine) reset() {
	e.histMu.Lock()
	e.hist.reset()
	e.histMu.Unlock()
	e.recv.Store(0)
	e.deflated.Store(0)
	e.other.Store(0)
	e.overflow.Store(0)
	e.dropped.Store(0)
	e.errs.Store(0)
	e.firstRcv.Store(0)
	e.lastRcv.Store(0)
}

var upgradeKey = base64.StdEncoding.EncodeToString([]byte("wsrelay-bench-16"))

// dial opens one connection as peer, sends the upgrade request and returns;
// ready receives exactly one value, nil once the connection is usable
// (welcome received and, with a room, joined) or an error, and must have room
// for it: the poller never blocks on it. host is host:port, path the /ws path.
func (e *engine) dial(host, path, peer, room string, ready chan<- error) (*wsConn, error) {
	return e.dialFrom(nil, host, path, peer, room, ready)
}

// dialFrom is dial from the local address src (nil: any).
func (e *engine) dialFrom(src net.Addr, host, path, peer, room string, ready chan<- error) (*wsConn, error) {
	w := &wsConn{eng: e, peer: peer, room: room, ready: ready}
	query := ""
	if peer != "" {
		query = "peer=" + peer
	}
	if err := e.open(w, src, host, path, query); err != nil {
		return nil, err
	}
	return w, nil
}

// open connects w, whose fields set before the upgrade are set, from src
// (nil: any) to host and writes the upgrade request for path?query (no
// query when empty).
func (e *engine) open(w *wsConn, src net.Addr, host, path, query string) error {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: src}
	raw, err := d.Dial("tcp", host)
	if err != nil {
		return err
	}
	nc, err := e.nb.AddConn(raw)
	if err != nil {
		raw.Close()
		return err
	}
	w.nc = nc
	// AddConn has the poller watch the socket already, but nothing arrives
	// before the request below is written, so the session is set in time.
	nc.SetSession(w)
	e.published.Add(1)
	req := make([]byte, 0, 256)
	req = append(req, "GET "...)
	req = append(req, path...)
	if query != "" {
		req = append(req, '?')
		req = append(req, query...)
	}
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, host...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	req = append(req, upgradeKey...)
	if e.offerDeflate.Load() {
		// What Chromium offers.
		req = append(req, "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"...)
	}
	req = append(req, "\r\n\r\n"...)
	if _, err := nc.Write(req); err != nil {
		nc.Close()
		return err
	}
	return nil
}

// send writes one client data message (masked with a zero key).
func (w *wsConn) send(op byte, payload []byte) error {
	var tmp [512]byte
	b := frame.AppendMaskedFrame(tmp[:0], true, op, [4]byte{}, payload)
	_, err := w.nc.Write(b)
	return err
}

// close sends a close frame and closes the socket.
func (w *wsConn) close() {
	w.state.Store(stClosed)
	_, _ = w.nc.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8})
	_ = w.nc.Close()
}

func (e *engine) onData(c *nbio.Conn, data []byte) {
	e.published.Load()
	w, _ := c.Session().(*wsConn)
	if w == nil {
		return
	}
	if w.pend != nil {
		w.pend = append(w.pend, data...)
		data = w.pend
	}
	now := time.Now().UnixNano()
	rest := e.consume(w, data, now)
	if len(rest) == 0 {
		w.pend = nil
		return
	}
	if w.pend != nil && len(rest) == len(w.pend) {
		return // nothing consumed, pend already holds it
	}
	w.pend = append(make([]byte, 0, len(rest)+512), rest...)
}

// consume handles every complete frame in data and returns the rest.
func (e *engine) consume(w *wsConn, data []byte, now int64) []byte {
	if w.state.Load() == stHandshake {
		i := bytes.Index(data, []byte("\r\n\r\n"))
		if i < 0 {
			return data
		}
		if !bytes.HasPrefix(data, []byte("HTTP/1.1 101")) {
			line, _, _ := bytes.Cut(data, []byte("\r\n"))
			w.fail(fmt.Errorf("%w: upgrade refused: %s", errHandshake, line))
			return nil
		}
		w.state.Store(stWelcome)
		data = data[i+4:]
	}
	for len(data) >= 2 {
		b0, b1 := data[0], data[1]
		n, h := int(b1&0x7F), 2
		switch n {
		case 126:
			if len(data) < 4 {
				return data
			}
			n, h = int(binary.BigEndian.Uint16(data[2:])), 4
		case 127:
			if len(data) < 10 {
				return data
			}
			n, h = int(binary.BigEndian.Uint64(data[2:])), 10
		}
		if len(data) < h+n {
			return data
		}
		p := data[h : h+n]
		if b0&0x40 != 0 {
			e.deflated.Add(1)
			p = e.inflateStart(p)
		}
		e.frame(w, b0&0x0F, p, now)
		data = data[h+n:]
	}
	return data
}

// inflateStart returns the first bytes (up to 320) of the message that the
// permessage-deflate payload p inflates to: enough for the type, the
// binary header and the timestamp, without paying for the whole message.
// The result is valid until the next call.
func (e *engine) inflateStart(p []byte) []byte {
	e.zsrc.Reset(p)
	if e.zr == nil {
		e.zr = flate.NewReader(&e.zsrc)
	} else {
		_ = e.zr.(flate.Resetter).Reset(&e.zsrc, nil)
	}
	n, _ := io.ReadFull(e.zr, e.zout[:])
	return e.zout[:n]
}

// report sends the outcome of the connection's setup, once.
func (w *wsConn) report(err error) {
	if w.ready != nil && w.reported.CompareAndSwap(false, true) {
		w.ready <- err
	}
}

func (w *wsConn) fail(err error) {
	w.report(err)
	w.state.Store(stClosed)
	_ = w.nc.Close()
}

var (
	keyType = []byte(`{"type":"`)
	keyT    = []byte(`"t":`)
)

// frame handles one server frame.
func (e *engine) frame(w *wsConn, op byte, p []byte, now int64) {
	switch op {
	case frame.OpPing:
		var tmp [2 + 4 + 125]byte
		_, _ = w.nc.Write(frame.AppendMaskedFrame(tmp[:0], true, frame.OpPong, [4]byte{}, p))
		e.pings.Add(1)
		return
	}
	if w.rp != nil {
		w.rp.frame(w, op, p, now)
		return
	}
	switch op {
	case frame.OpClose:
		if !e.closing.Load() && w.state.Load() != stClosed {
			e.closed.Add(1)
		}
		w.state.Store(stClosed)
		_ = w.nc.Close()
		return
	case frame.OpBinary:
		var hd frame.Header
		payload, err := frame.ParseServerHeader(p, &hd)
		if err == nil && len(payload) >= 8 {
			e.delivered(int64(binary.BigEndian.Uint64(payload)), now)
		} else {
			e.other.Add(1)
		}
		return
	case frame.OpText:
	default:
		return
	}
	// {"type":"publish",...} / {"type":"direct",...}: the routed ones carry
	// "t":<unix ns> as the first field of data.
	if !bytes.HasPrefix(p, keyType) {
		e.other.Add(1)
		return
	}
	typ := p[len(keyType):]
	switch {
	case bytes.HasPrefix(typ, []byte(`publish"`)), bytes.HasPrefix(typ, []byte(`direct"`)), bytes.HasPrefix(typ, []byte(`broadcast"`)):
		if i := bytes.Index(p, keyT); i >= 0 {
			if t, ok := parseInt(p[i+len(keyT):]); ok {
				e.delivered(t, now)
				return
			}
		}
		e.other.Add(1)
	case bytes.HasPrefix(typ, []byte(`welcome"`)):
		if w.room == "" {
			w.becomeReady()
			return
		}
		w.state.Store(stJoining)
		var tmp [200]byte
		b := append(tmp[:0], `{"type":"join","room":"`...)
		b = append(b, w.room...)
		b = append(b, `"}`...)
		_ = w.send(frame.OpText, b)
	case bytes.HasPrefix(typ, []byte(`joined"`)):
		w.becomeReady()
	case bytes.HasPrefix(typ, []byte(`overflow"`)):
		e.overflow.Add(1)
		if i := bytes.Index(p, []byte(`"dropped":`)); i >= 0 {
			if n, ok := parseInt(p[i+10:]); ok {
				e.dropped.Add(n)
			}
		}
	case bytes.HasPrefix(typ, []byte(`error"`)):
		e.errs.Add(1)
	default:
		e.other.Add(1)
	}
}

func (w *wsConn) becomeReady() {
	w.state.Store(stReady)
	w.report(nil)
}

func (e *engine) delivered(sent, now int64) {
	e.recv.Add(1)
	e.firstRcv.CompareAndSwap(0, now)
	e.lastRcv.Store(now)
	e.histMu.Lock()
	e.hist.record(now - sent)
	e.histMu.Unlock()
}

func parseInt(b []byte) (int64, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return v, err == nil
}

// appendTimed appends a JSON data value of about size bytes whose first field
// is the send time: {"t":<unix ns>,"p":"xxx..."}, or with jsonFill
// {"t":<unix ns>,"p":"v=0 o=- 4611731400430051336 2 IN IP4 ..."}.
func appendTimed(dst []byte, now int64, size int, jsonFill bool) []byte {
	start := len(dst)
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, now, 10)
	dst = append(dst, `,"p":"`...)
	if n := size - 2 - (len(dst) - start); jsonFill && n > 0 {
		dst = append(dst, sdpFiller[:min(n, len(sdpFiller))]...)
	}
	for len(dst)-start < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// sdpFiller is 64 KiB of text shaped like the SDP offers and ICE
// candidates peers exchange through a relay (fixed, pseudo-random numbers,
// no quote or backslash), so that a payload compresses as real signalling
// does: about 3 to 1 with permessage-deflate.
var sdpFiller = func() string {
	rng := rand.New(rand.NewPCG(1, 2))
	lines := []string{
		"v=0 o=- %d 2 IN IP4 127.0.0.1 s=- t=0 0 ",
		"a=group:BUNDLE 0 1 a=msid-semantic: WMS %d ",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126 c=IN IP4 0.0.0.0 ",
		"a=candidate:%d 1 udp 2122260223 192.0.2.%d 5%d typ host generation 0 network-id 1 ",
		"a=ice-ufrag:%x a=ice-pwd:%x a=ice-options:trickle ",
		"a=fingerprint:sha-256 %X:%X:%X:%X a=setup:actpass a=mid:0 ",
		"a=rtpmap:111 opus/48000/2 a=rtcp-fb:111 transport-cc a=fmtp:111 minptime=10;useinbandfec=1 ",
		"a=ssrc:%d cname:%x a=ssrc:%d msid:%x ",
	}
	var b []byte
	for len(b) < 64<<10 {
		l := lines[rng.IntN(len(lines))]
		args := make([]any, strings.Count(l, "%"))
		for i := range args {
			args[i] = rng.Uint32() >> (rng.IntN(4) * 8)
		}
		b = fmt.Appendf(b, l, args...)
	}
	return string(b)
}()
