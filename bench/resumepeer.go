package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// resumePeer is one peer of the resume scenario: a session (docs/protocol.md
// section 10) that outlives its connections. The poller counts what arrives
// on the connection in use; the worker's run loop sends, cuts and resumes.
type resumePeer struct {
	// Set at construction.
	set  *resumeSet
	idx  int    // the peer's index, sent in every message it publishes
	room string // the room it is in

	mu sync.Mutex
	// Guarded by mu.
	conn     *wsConn   // the connection in use; nil while cut
	token    string    // resume token of the last welcome
	welcomed bool      // conn got its welcome
	joined   bool      // the session is in its room: it may publish
	dialed   time.Time // when the resume on conn started to connect; zero for the first connection
	lost     bool      // conn closed without being cut: resume at the next round
	held     bool      // cut by detach: stays away until attach
	burst    bool      // the resume in progress is one of attach's, all at once
	opened   int64     // unix ns when conn started to connect: older messages are replays
	count    uint64    // data messages received in the session: every text or binary message after welcome
	seq      int64     // messages published
	acked    int64     // acks received: messages routed to the room
	last     map[int]int64
	got      int64 // messages of room mates received, each once
	dups     int64 // messages of room mates received again, or older than one received
}

// resumeSet is a worker's peers of the resume scenario, in whole rooms, so
// that what each one should receive is known in the worker: every message
// its room mates got an ack for.
type resumeSet struct {
	// Set at construction.
	eng        *engine
	host, path string
	peers      []*resumePeer

	mu sync.Mutex
	// Guarded by mu.
	times      *histogram // resume times of the cuts: connect to the welcome
	burstTimes *histogram // resume times of attach, all the detached sessions at once
	resumes    int64
	notResumed int64
	missed     int64
	cuts       int64
	unexpected int64 // connections closed that were not cut
	errs       int64 // error messages, failed dials, welcomes without a token
	firstErr   string
	held       []*resumePeer // cut by detach, not resumed yet
}

var errNoToken = errors.New("welcome without a resume token: session resume is off (WSRELAY_RESUME_WINDOW=0)")

func (s *resumeSet) fail(err error) {
	s.mu.Lock()
	s.errs++
	if s.firstErr == "" {
		s.firstErr = err.Error()
	}
	s.mu.Unlock()
}

// resumeOp runs one of the resume scenario's commands.
func (wk *workerState) resumeOp(cmd command) reply {
	if cmd.Op == "resume-connect" {
		if wk.sessions != nil {
			return reply{Err: "resume: connected already"}
		}
		wk.sessions = &resumeSet{eng: wk.eng, host: cmd.URL, path: cmd.Path, times: newHistogram(), burstTimes: newHistogram()}
		return wk.sessions.connect(cmd)
	}
	s := wk.sessions
	if s == nil {
		return reply{Err: "resume: not connected"}
	}
	switch cmd.Op {
	case "resume-run":
		return s.run(cmd)
	case "resume-detach":
		return s.detach(cmd.Count)
	case "resume-attach":
		return s.attach()
	}
	return s.report()
}

// connect opens cmd.Count sessions, peers cmd.Prefix+index from cmd.From,
// cmd.RoomSize to a room, with cmd.Dialers handshakes in flight at most, and
// waits until each has joined its room or failed (30 s at most).
func (s *resumeSet) connect(cmd command) reply {
	start := time.Now()
	ready := make(chan error, cmd.Count)
	var r reply
	tally := func(err error) {
		if err == nil {
			r.OK++
			return
		}
		r.Failed++
		if r.FirstErr == "" {
			r.FirstErr = err.Error()
		}
	}
	deadline := time.After(30*time.Second + time.Duration(cmd.Count)*10*time.Millisecond)
	inflight := 0
	wait := func() bool {
		select {
		case err := <-ready:
			tally(err)
			inflight--
			return true
		case <-deadline:
			return false
		}
	}
	for i := cmd.From; i < cmd.From+cmd.Count; i++ {
		for inflight >= max(cmd.Dialers, 1) {
			if !wait() {
				tally(fmt.Errorf("%d connections not ready in time", inflight))
				return r
			}
		}
		rp := &resumePeer{set: s, idx: i, room: "resume-" + strconv.Itoa(i/max(cmd.RoomSize, 1)), last: map[int]int64{}}
		s.peers = append(s.peers, rp)
		w := &wsConn{eng: s.eng, peer: cmd.Prefix + strconv.Itoa(i), ready: ready, rp: rp}
		rp.conn = w
		if err := s.eng.open(w, nil, s.host, s.path, "peer="+w.peer); err != nil {
			rp.mu.Lock()
			rp.conn, rp.lost = nil, true
			rp.mu.Unlock()
			tally(err)
			continue
		}
		inflight++
	}
	for inflight > 0 {
		if !wait() {
			tally(fmt.Errorf("%d connections not ready in time", inflight))
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// closed is the poller's report that w's socket closed.
func (rp *resumePeer) closed(w *wsConn, cerr error) {
	w.state.Store(stClosed)
	rp.mu.Lock()
	ours := rp.conn == w
	if ours {
		rp.conn, rp.lost, rp.welcomed, rp.joined = nil, true, false, false
	}
	rp.mu.Unlock()
	if ours {
		rp.set.mu.Lock()
		rp.set.unexpected++
		rp.set.mu.Unlock()
		w.report(fmt.Errorf("closed before it joined: %v", cerr))
	}
}

var (
	keySender = []byte(`,"s":`)
	keySeq    = []byte(`,"n":`)
)

// frame handles one server frame (pings aside) of w, received at now, on
// the poller.
func (rp *resumePeer) frame(w *wsConn, op byte, p []byte, now int64) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if w != rp.conn {
		// A connection the peer stopped using: what arrives there is not
		// counted (docs/protocol.md section 10).
		if op == frame.OpClose {
			_ = w.nc.Close()
		}
		return
	}
	switch op {
	case frame.OpClose:
		rp.conn, rp.lost, rp.welcomed, rp.joined = nil, true, false, false
		w.state.Store(stClosed)
		_ = w.nc.Close()
		rp.set.mu.Lock()
		rp.set.unexpected++
		rp.set.mu.Unlock()
		return
	case frame.OpText, frame.OpBinary:
	default:
		return
	}
	if !rp.welcomed {
		rp.welcome(w, p)
		return
	}
	rp.count++
	if !bytes.HasPrefix(p, keyType) {
		return
	}
	typ := p[len(keyType):]
	switch {
	case bytes.HasPrefix(typ, []byte(`publish"`)):
		i, j := bytes.Index(p, keySender), bytes.Index(p, keySeq)
		if i < 0 || j < 0 {
			return
		}
		from, ok1 := parseInt(p[i+len(keySender):])
		n, ok2 := parseInt(p[j+len(keySeq):])
		if !ok1 || !ok2 {
			return
		}
		if last, seen := rp.last[int(from)]; seen && n <= last {
			rp.dups++
			return
		}
		rp.last[int(from)] = n
		rp.got++
		if i := bytes.Index(p, keyT); i >= 0 {
			if t, ok := parseInt(p[i+len(keyT):]); ok && t >= rp.opened {
				rp.set.eng.delivered(t, now) // latency of live messages, replays apart
			}
		}
	case bytes.HasPrefix(typ, []byte(`ack"`)):
		rp.acked++
	case bytes.HasPrefix(typ, []byte(`joined"`)):
		rp.joined = true
		w.report(nil)
	case bytes.HasPrefix(typ, []byte(`error"`)):
		rp.set.fail(fmt.Errorf("relay error: %s", p))
	}
}

// welcome handles the welcome on rp.conn: a resume's is timed and counted;
// a new session (the first, or a resume that got "resumed":false) counts
// from zero and joins its room. Called with rp.mu held.
func (rp *resumePeer) welcome(w *wsConn, p []byte) {
	var m struct {
		Type    string `json:"type"`
		Resume  string `json:"resume"`
		Resumed bool   `json:"resumed"`
		Missed  int64  `json:"missed"`
	}
	if err := json.Unmarshal(p, &m); err != nil || m.Type != "welcome" {
		rp.set.fail(fmt.Errorf("want a welcome, got %.200s", p))
		return
	}
	rp.welcomed = true
	rp.token = m.Resume
	if m.Resume == "" {
		rp.set.fail(errNoToken)
	}
	if !rp.dialed.IsZero() {
		s := rp.set
		s.mu.Lock()
		if rp.burst {
			s.burstTimes.record(int64(time.Since(rp.dialed)))
		} else {
			s.times.record(int64(time.Since(rp.dialed)))
		}
		s.resumes++
		s.missed += m.Missed
		if !m.Resumed {
			s.notResumed++
		}
		s.mu.Unlock()
		rp.dialed, rp.burst = time.Time{}, false
	}
	if m.Resumed {
		rp.joined = true // count goes on from the N of the request
		return
	}
	rp.count = 0
	var tmp [200]byte
	b := append(tmp[:0], `{"type":"join","room":"`...)
	b = append(b, rp.room...)
	b = append(b, `"}`...)
	_ = w.send(frame.OpText, b)
}

// publish sends one message to the room if the peer is connected and in
// it: {"type":"publish","room":R,"id":N,"data":{"t":ns,"s":index,"n":N}}.
// It reports whether the message was written.
func (rp *resumePeer) publish(buf []byte) ([]byte, bool) {
	rp.mu.Lock()
	w := rp.conn
	if w == nil || !rp.joined {
		rp.mu.Unlock()
		return buf, false
	}
	rp.seq++
	n := rp.seq
	rp.mu.Unlock()
	buf = append(buf[:0], `{"type":"publish","room":"`...)
	buf = append(buf, rp.room...)
	buf = append(buf, `","id":`...)
	buf = strconv.AppendInt(buf, n, 10)
	buf = append(buf, `,"data":{"t":`...)
	buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
	buf = append(buf, keySender...)
	buf = strconv.AppendInt(buf, int64(rp.idx), 10)
	buf = append(buf, keySeq...)
	buf = strconv.AppendInt(buf, n, 10)
	buf = append(buf, `}}`...)
	return buf, w.send(frame.OpText, buf) == nil
}

// ping tells the relay how many messages the peer received, so that it
// releases them from its replay buffer, as a browser client does.
func (rp *resumePeer) ping() {
	rp.mu.Lock()
	w, n := rp.conn, rp.count
	if !rp.welcomed {
		w = nil
	}
	rp.mu.Unlock()
	if w != nil {
		var tmp [64]byte
		b := append(tmp[:0], `{"type":"ping","received":`...)
		b = strconv.AppendUint(b, n, 10)
		_ = w.send(frame.OpText, append(b, '}'))
	}
}

// cut ends the peer's connection abruptly, without a close frame, as a lost
// network does: it shuts the socket down and leaves the close to the
// poller. Only a welcomed connection is cut; it reports whether it was.
func (rp *resumePeer) cut() bool {
	rp.mu.Lock()
	w := rp.conn
	if w == nil || !rp.welcomed {
		rp.mu.Unlock()
		return false
	}
	rp.conn, rp.welcomed, rp.joined = nil, false, false
	rp.mu.Unlock()
	w.state.Store(stClosed)
	if closed, _ := w.nc.IsClosed(); !closed {
		if rc, err := w.nc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
		}
	}
	rp.set.mu.Lock()
	rp.set.cuts++
	rp.set.mu.Unlock()
	return true
}

// resume connects again with GET /ws?resume=TOKEN&received=N, unless the
// peer is connected.
func (rp *resumePeer) resume() {
	s := rp.set
	w := &wsConn{eng: s.eng, rp: rp}
	rp.mu.Lock()
	if rp.conn != nil {
		rp.mu.Unlock()
		return
	}
	query := "resume=" + url.QueryEscape(rp.token) + "&received=" + strconv.FormatUint(rp.count, 10)
	rp.conn, rp.dialed, rp.lost, rp.welcomed, rp.joined = w, time.Now(), false, false, false
	rp.opened = rp.dialed.UnixNano()
	rp.mu.Unlock()
	if err := s.eng.open(w, nil, s.host, s.path, query); err != nil {
		rp.mu.Lock()
		if rp.conn == w {
			rp.conn, rp.lost = nil, true
		}
		rp.mu.Unlock()
		s.fail(fmt.Errorf("resume: %w", err))
	}
}

// settled reports whether the peer is connected and in its room, or held
// away by detach.
func (rp *resumePeer) settled() bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.held || rp.conn != nil && rp.joined
}

// resumeLost resumes the peers whose connection closed without a cut.
func (s *resumeSet) resumeLost() {
	for _, rp := range s.peers {
		rp.mu.Lock()
		lost := rp.lost
		rp.mu.Unlock()
		if lost {
			rp.resume()
		}
	}
}

// run publishes cmd.Rate messages a second for cmd.For, round robin over
// the peers that are in their room, and every second cuts a share cmd.Cut
// of the connections, each resumed after cmd.Life. At the end every peer
// is resumed and the run waits until all are back in their rooms (10 s at
// most).
func (s *resumeSet) run(cmd command) reply {
	type due struct {
		rp *resumePeer
		at time.Time
	}
	var pending []due
	rng := rand.New(rand.NewPCG(uint64(cmd.From), uint64(len(s.peers))))
	start := time.Now()
	total := int64(cmd.Rate * cmd.For.Seconds())
	next := start.Add(time.Second)
	var sent, done, k int64
	var buf []byte
	cutAcc := 0.0
	for {
		now := time.Now()
		el := now.Sub(start)
		if (el >= cmd.For && done >= total) || el > cmd.For+5*time.Second {
			break
		}
		for target := min(int64(cmd.Rate*el.Seconds())+1, total); done < target; done++ {
			for range s.peers { // the next peer that can publish
				rp := s.peers[k%int64(len(s.peers))]
				k++
				var ok bool
				if buf, ok = rp.publish(buf); ok {
					sent++
					break
				}
			}
		}
		for len(pending) > 0 && !now.Before(pending[0].at) {
			pending[0].rp.resume()
			pending = pending[1:]
		}
		if !now.Before(next) && el < cmd.For {
			next = next.Add(time.Second)
			for _, rp := range s.peers {
				rp.ping()
			}
			s.resumeLost()
			cutAcc += cmd.Cut * float64(len(s.peers))
			for ; cutAcc >= 1-1e-9; cutAcc-- { // 0.05 × 1000 is 49.99... in floating point
				// From a random peer on, the first one connected.
				i := rng.IntN(len(s.peers))
				for range s.peers {
					rp := s.peers[i]
					if rp.cut() {
						pending = append(pending, due{rp, now.Add(cmd.Life)})
						break
					}
					i = (i + 1) % len(s.peers)
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	for _, d := range pending {
		time.Sleep(time.Until(d.at))
		d.rp.resume()
	}
	s.awaitSettled(10 * time.Second)
	return reply{Sent: sent}
}

// awaitSettled waits until every peer is back in its room, resuming the
// ones that lost their connection, at most limit.
func (s *resumeSet) awaitSettled(limit time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		all := true
		for _, rp := range s.peers {
			if !rp.settled() {
				all = false
				break
			}
		}
		if all {
			return
		}
		s.resumeLost()
		time.Sleep(50 * time.Millisecond)
	}
}

// detach cuts the connections of n peers spread over the rooms and keeps
// them away until attach.
func (s *resumeSet) detach(n int) reply {
	n = min(n, len(s.peers))
	var r reply
	for i := range n {
		rp := s.peers[i*len(s.peers)/n]
		if rp.cut() {
			rp.mu.Lock()
			rp.held = true
			rp.mu.Unlock()
			s.mu.Lock()
			s.held = append(s.held, rp)
			s.mu.Unlock()
			r.OK++
		}
	}
	return r
}

// attach resumes the peers detach cut and waits until they are back.
func (s *resumeSet) attach() reply {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, rp := range held {
		rp.mu.Lock()
		rp.held, rp.burst = false, true
		rp.mu.Unlock()
		rp.resume()
	}
	s.awaitSettled(10 * time.Second)
	return reply{OK: len(held)}
}

// report sums the peers' accounting: a peer should have received every
// message its room mates got an ack for.
func (s *resumeSet) report() reply {
	var r reply
	roomAcked := map[string]int64{}
	acked := make([]int64, len(s.peers))
	got := make([]int64, len(s.peers))
	for i, rp := range s.peers {
		rp.mu.Lock()
		acked[i], got[i] = rp.acked, rp.got
		r.Sent += rp.seq
		r.Dups += rp.dups
		rp.mu.Unlock()
		roomAcked[rp.room] += acked[i]
		r.Acked += acked[i]
		r.Recv += got[i]
	}
	for i, rp := range s.peers {
		due := roomAcked[rp.room] - acked[i]
		r.Expected += due
		if got[i] < due {
			r.Short++
		}
	}
	s.mu.Lock()
	r.Hist, r.HistMax = s.times.sparse(), s.times.max
	r.BurstHist, r.BurstHistMax = s.burstTimes.sparse(), s.burstTimes.max
	r.Resumes, r.NotResumed, r.Missed, r.Cuts = s.resumes, s.notResumed, s.missed, s.cuts
	r.Closed, r.Errors, r.FirstErr = s.unexpected, s.errs, s.firstErr
	s.mu.Unlock()
	return r
}
