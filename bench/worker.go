package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// workerArg, as the first argument, makes the harness binary a worker: it
// reads commands as JSON lines on stdin and answers each with one JSON line
// on stdout. Workers hold client connections, so that a run can exceed one
// process's open-file limit.
const workerArg = "__bench_worker"

// command is one request of the parent to a worker.
type command struct {
	Op string `json:"op"` // connect, slow, direct, churn, resume-*, report, reset, close

	URL    string `json:"url,omitempty"`    // host:port
	Path   string `json:"path,omitempty"`   // /ws
	Prefix string `json:"prefix,omitempty"` // peer ids are Prefix + index
	From   int    `json:"from,omitempty"`   // first index
	Count  int    `json:"count,omitempty"`
	Room   string `json:"room,omitempty"`  // room name; %d is replaced by index % Rooms
	Rooms  int    `json:"rooms,omitempty"` // rooms to spread over (Room with %d)

	Rate    float64       `json:"rate,omitempty"`    // messages (or connections) per second
	For     time.Duration `json:"for,omitempty"`     // how long
	Size    int           `json:"size,omitempty"`    // payload bytes
	Life    time.Duration `json:"life,omitempty"`    // churn: how long a connection lives
	Dialers int           `json:"dialers,omitempty"` // concurrent handshakes
	Bind    []string      `json:"bind,omitempty"`    // local addresses to dial from, round robin

	RoomSize int     `json:"room_size,omitempty"` // resume: peers per room
	Cut      float64 `json:"cut,omitempty"`       // resume: share of the connections cut every second
}

// reply is a worker's answer.
type reply struct {
	Err string `json:"err,omitempty"`

	OK     int `json:"ok,omitempty"`
	Failed int `json:"failed,omitempty"`
	// Handshakes counts the failures that were handshakes: the dial, the
	// upgrade or the wait for the welcome failed (churn).
	Handshakes int     `json:"handshakes,omitempty"`
	FirstErr   string  `json:"first_err,omitempty"`
	Seconds    float64 `json:"seconds,omitempty"`
	Sent       int64   `json:"sent,omitempty"`

	Recv     int64       `json:"recv,omitempty"`
	Other    int64       `json:"other,omitempty"`
	Overflow int64       `json:"overflow,omitempty"`
	Dropped  int64       `json:"dropped,omitempty"`
	Errors   int64       `json:"errors,omitempty"`
	Closed   int64       `json:"closed,omitempty"`
	Pings    int64       `json:"pings,omitempty"`
	Deflated int64       `json:"deflated,omitempty"` // compressed frames received
	FirstRcv int64       `json:"first_rcv,omitempty"`
	LastRcv  int64       `json:"last_rcv,omitempty"`
	Hist     [][2]uint64 `json:"hist,omitempty"`
	HistMax  int64       `json:"hist_max,omitempty"`

	// The resume scenario's accounting (Hist holds the resume times).
	Expected   int64 `json:"expected,omitempty"`    // messages the peers should have received
	Dups       int64 `json:"dups,omitempty"`        // messages received again or out of order
	Acked      int64 `json:"acked,omitempty"`       // acks: messages routed
	Missed     int64 `json:"missed,omitempty"`      // sum of the welcomes' missed
	Resumes    int64 `json:"resumes,omitempty"`     // resume welcomes received
	NotResumed int64 `json:"not_resumed,omitempty"` // of them with "resumed":false
	Cuts       int64 `json:"cuts,omitempty"`        // connections cut
	Short      int64 `json:"short,omitempty"`       // receivers that got fewer than they should have
	// Resume times of the detached batch coming back at once.
	BurstHist    [][2]uint64 `json:"burst_hist,omitempty"`
	BurstHistMax int64       `json:"burst_hist_max,omitempty"`
}

// runWorker serves commands until stdin ends. Its arguments after workerArg
// are workerFlags.
func runWorker() int {
	fs := flag.NewFlagSet(workerArg, flag.ContinueOnError)
	compress := fs.Bool("compress", false, "")
	jsonFill := fs.Bool("json-fill", false, "")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return 2
	}
	eng, err := newEngine("bench-worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		return 1
	}
	defer eng.stop()
	eng.offerDeflate.Store(*compress)
	wk := &workerState{eng: eng, jsonFill: *jsonFill}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			_ = out.Encode(reply{Err: err.Error()})
			continue
		}
		r := wk.do(cmd)
		if err := out.Encode(r); err != nil {
			return 1
		}
	}
	wk.closeAll()
	return 0
}

type workerState struct {
	eng      *engine
	jsonFill bool // timed payloads carry SDP-like text (-payload json)
	conns    []*wsConn
	slow     []net.Conn
	sessions *resumeSet // the resume scenario's peers
}

func (wk *workerState) do(cmd command) reply {
	switch cmd.Op {
	case "connect":
		conns, r := connectMany(wk.eng, cmd)
		wk.conns = append(wk.conns, conns...)
		return r
	case "slow":
		return wk.connectSlow(cmd)
	case "direct":
		return wk.direct(cmd)
	case "churn":
		return churn(wk.eng, cmd)
	case "resume-connect", "resume-run", "resume-detach", "resume-attach", "resume-report":
		return wk.resumeOp(cmd)
	case "report":
		return report(wk.eng)
	case "reset":
		wk.eng.reset()
		return reply{}
	case "close":
		n := len(wk.conns) + len(wk.slow)
		wk.closeAll()
		return reply{OK: n}
	}
	return reply{Err: "unknown op " + cmd.Op}
}

func (wk *workerState) closeAll() {
	wk.eng.closing.Store(true)
	for _, w := range wk.conns {
		w.close()
	}
	for _, c := range wk.slow {
		_ = c.Close()
	}
	wk.conns, wk.slow = nil, nil
	time.Sleep(100 * time.Millisecond)
	wk.eng.closing.Store(false)
}

func report(e *engine) reply {
	e.histMu.Lock()
	sp, mx := e.hist.sparse(), e.hist.max
	e.histMu.Unlock()
	return reply{
		Recv: e.recv.Load(), Other: e.other.Load(), Overflow: e.overflow.Load(),
		Dropped: e.dropped.Load(), Errors: e.errs.Load(), Closed: e.closed.Load(),
		Pings: e.pings.Load(), Deflated: e.deflated.Load(), FirstRcv: e.firstRcv.Load(), LastRcv: e.lastRcv.Load(),
		Hist: sp, HistMax: mx,
	}
}

func roomName(cmd command, i int) string {
	if cmd.Room == "" || cmd.Rooms <= 0 {
		return cmd.Room
	}
	return fmt.Sprintf(cmd.Room, i%cmd.Rooms)
}

// connectMany opens cmd.Count connections with cmd.Dialers handshakes in
// flight at most, and waits until each is usable or failed (30 s at most).
func connectMany(e *engine, cmd command) ([]*wsConn, reply) {
	start := time.Now()
	ready := make(chan error, cmd.Count)
	inflight := max(cmd.Dialers, 1)
	var (
		mu    sync.Mutex
		conns = make([]*wsConn, 0, cmd.Count)
		r     reply
	)
	fail := func(err error) {
		r.Failed++
		if r.FirstErr == "" {
			r.FirstErr = err.Error()
		}
	}
	sem := make(chan struct{}, inflight)
	done := make(chan struct{})
	outcome := make(chan struct{}, cmd.Count)
	go func() { // collects outcomes, frees handshake slots
		defer close(done)
		deadline := time.After(30*time.Second + time.Duration(cmd.Count)*10*time.Millisecond)
		for n := 0; n < cmd.Count; n++ {
			select {
			case err := <-ready:
				mu.Lock()
				if err != nil {
					fail(err)
				} else {
					r.OK++
				}
				mu.Unlock()
				<-sem
			case <-outcome:
				<-sem
			case <-deadline:
				mu.Lock()
				fail(fmt.Errorf("%d connections not ready in time", cmd.Count-n))
				r.Failed += cmd.Count - n - 1
				mu.Unlock()
				return
			}
		}
	}()
	for i := cmd.From; i < cmd.From+cmd.Count; i++ {
		select {
		case sem <- struct{}{}:
		case <-done:
		}
		peer := cmd.Prefix + strconv.Itoa(i)
		var src net.Addr
		if len(cmd.Bind) > 0 {
			src = &net.TCPAddr{IP: net.ParseIP(cmd.Bind[i%len(cmd.Bind)])}
		}
		w, err := e.dialFrom(src, cmd.URL, cmd.Path, peer, roomName(cmd, i), ready)
		if err != nil {
			mu.Lock()
			fail(err)
			mu.Unlock()
			outcome <- struct{}{}
			continue
		}
		conns = append(conns, w)
	}
	<-done
	r.Seconds = time.Since(start).Seconds()
	return conns, r
}

// connectSlow opens connections that join a room and then never read: a
// blocking socket with a small receive buffer, read only until "joined".
func (wk *workerState) connectSlow(cmd command) reply {
	var r reply
	start := time.Now()
	for i := cmd.From; i < cmd.From+cmd.Count; i++ {
		c, err := slowDial(cmd, cmd.Prefix+strconv.Itoa(i), roomName(cmd, i))
		if err != nil {
			r.Failed++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		wk.slow = append(wk.slow, c)
		r.OK++
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

func slowDial(cmd command, peer, room string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", cmd.URL, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	req := "GET " + cmd.Path + "?peer=" + peer + " HTTP/1.1\r\nHost: " + cmd.URL +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + upgradeKey + "\r\n\r\n"
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := readUntil(c, []byte(req), []byte(`"type":"welcome"`)); err != nil {
		c.Close()
		return nil, err
	}
	join := frame.AppendMaskedFrame(nil, true, frame.OpText, [4]byte{}, []byte(`{"type":"join","room":"`+room+`"}`))
	if err := readUntil(c, join, []byte(`"type":"joined"`)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func readUntil(c net.Conn, req, want []byte) error {
	if _, err := c.Write(req); err != nil {
		return err
	}
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, want) {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", want, err)
		}
		got = append(got, buf[:n]...)
	}
	return nil
}

// direct makes pairs of this worker's ready connections (0→1, 2→3, ...)
// send direct messages to each other at cmd.Rate in total for cmd.For.
func (wk *workerState) direct(cmd command) reply {
	var pairs [][2]*wsConn
	for i := 0; i+1 < len(wk.conns); i += 2 {
		pairs = append(pairs, [2]*wsConn{wk.conns[i], wk.conns[i+1]})
	}
	if len(pairs) == 0 {
		return reply{Err: "no pairs"}
	}
	msgs := make([][]byte, len(pairs))
	for i, p := range pairs {
		msgs[i] = []byte(`{"type":"direct","to":"` + p[1].peer + `","data":`)
	}
	var sent int64
	k := 0
	var body []byte
	paced(cmd.Rate, cmd.For, func(now time.Time) {
		body = append(body[:0], msgs[k]...)
		body = appendTimed(body, now.UnixNano(), cmd.Size, wk.jsonFill)
		body = append(body, '}')
		if pairs[k][0].send(frame.OpText, body) == nil {
			sent++
		}
		k = (k + 1) % len(pairs)
	})
	return reply{Sent: sent}
}

// paced calls f rate times a second for d, catching up in bursts when the
// goroutine falls behind (a coordinated-omission-free open loop).
func paced(rate float64, d time.Duration, f func(now time.Time)) {
	start := time.Now()
	total := int64(rate * d.Seconds())
	var done int64
	for done < total {
		now := time.Now()
		el := now.Sub(start)
		if el > d+5*time.Second {
			return
		}
		due := min(int64(rate*el.Seconds())+1, total)
		for ; done < due; done++ {
			f(now)
		}
		time.Sleep(time.Millisecond)
	}
}

// churn connects cmd.Rate connections a second for cmd.For; each joins the
// room, lives cmd.Life and closes. It returns the connections made and the
// failures.
func churn(e *engine, cmd command) reply {
	var r reply
	ready := make(chan error, int(cmd.Rate*cmd.For.Seconds())+16)
	type live struct {
		w    *wsConn
		dies time.Time
	}
	var alive []live
	i := cmd.From
	start := time.Now()
	paced(cmd.Rate, cmd.For, func(now time.Time) {
		for len(alive) > 0 && now.After(alive[0].dies) {
			alive[0].w.closeQuiet(e)
			alive = alive[1:]
		}
		w, err := e.dial(cmd.URL, cmd.Path, cmd.Prefix+strconv.Itoa(i), roomName(cmd, i), ready)
		i++
		if err != nil {
			r.Failed++
			r.Handshakes++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			return
		}
		alive = append(alive, live{w, now.Add(cmd.Life)})
		r.Sent++
	})
	time.Sleep(cmd.Life)
	for _, l := range alive {
		l.w.closeQuiet(e)
	}
	// Collect the setup outcomes that arrived.
	for {
		select {
		case err := <-ready:
			if err != nil {
				r.Failed++
				if errors.Is(err, errHandshake) {
					r.Handshakes++
				}
				if r.FirstErr == "" {
					r.FirstErr = err.Error()
				}
			} else {
				r.OK++
			}
			continue
		default:
		}
		break
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// closeQuiet closes a connection on purpose, without counting it as lost:
// it sends a close frame and leaves the socket to the poller, which closes
// it on the relay's answer. Closing an nbio socket from another goroutine
// while new ones open can hit a stale epoll event for a reused descriptor
// and close a new connection in setup (seen at 200 opens a second), so the
// socket is closed here only if the relay has not answered in closeWait.
func (w *wsConn) closeQuiet(e *engine) {
	w.report(errors.New("setup not done when its lifetime ended"))
	if w.state.Swap(stClosed) == stClosed {
		return
	}
	_, _ = w.nc.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8})
	time.AfterFunc(closeWait, func() {
		if closed, _ := w.nc.IsClosed(); !closed {
			_ = w.nc.Close()
		}
	})
}

// closeWait is how long closeQuiet waits for the relay to close.
const closeWait = 5 * time.Second

// worker is the parent's handle on a worker process.
type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startWorker(i int, flags []string) (*worker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := exec.Command(self, append([]string{workerArg}, flags...)...)
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", i, err)
	}
	return &worker{cmd: c, in: in, out: json.NewDecoder(out)}, nil
}

func (w *worker) send(cmd command) error {
	b, _ := json.Marshal(cmd)
	_, err := w.in.Write(append(b, '\n'))
	return err
}

func (w *worker) recv() (reply, error) {
	var r reply
	if err := w.out.Decode(&r); err != nil {
		return r, fmt.Errorf("worker: %w", err)
	}
	if r.Err != "" {
		return r, errors.New("worker: " + r.Err)
	}
	return r, nil
}

// stop ends the worker and returns how it exited: an error when it failed
// (the race detector, for one, makes a worker exit with status 66).
func (w *worker) stop() error {
	_ = w.in.Close()
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
		<-done
		return errors.New("worker did not exit within 5 s of its stdin closing")
	}
}

// pool is the set of worker processes of a run.
type pool []*worker

// workerFlags are the settings of a run that every worker applies to all of
// its connections.
func workerFlags(o *options) []string {
	var f []string
	if o.compress {
		f = append(f, "-compress")
	}
	if o.payload == "json" {
		f = append(f, "-json-fill")
	}
	return f
}

func startPool(n int, flags []string) (pool, error) {
	var p pool
	for i := range n {
		w, err := startWorker(i, flags)
		if err != nil {
			p.stop()
			return nil, err
		}
		p = append(p, w)
	}
	return p, nil
}

func (p pool) stop() error {
	var first error
	for i, w := range p {
		if err := w.stop(); err != nil && first == nil {
			first = fmt.Errorf("worker %d: %w", i, err)
		}
	}
	return first
}

// all sends cmds[i] to worker i (nil entries are skipped) and returns the
// replies, in parallel.
func (p pool) all(cmds []*command) ([]reply, error) {
	for i, c := range cmds {
		if c != nil {
			if err := p[i].send(*c); err != nil {
				return nil, err
			}
		}
	}
	out := make([]reply, len(p))
	var first error
	for i, c := range cmds {
		if c == nil {
			continue
		}
		r, err := p[i].recv()
		if err != nil && first == nil {
			first = err
		}
		out[i] = r
	}
	return out, first
}

// each sends the same command to every worker.
func (p pool) each(c command) ([]reply, error) {
	cmds := make([]*command, len(p))
	for i := range cmds {
		cc := c
		cmds[i] = &cc
	}
	return p.all(cmds)
}

// split sends c to every worker with Count divided among them and From
// adjusted, so that indexes from c.From to c.From+c.Count-1 are covered once.
func (p pool) split(c command) ([]reply, error) {
	cmds := make([]*command, len(p))
	from := c.From
	for i := range p {
		n := c.Count / len(p)
		if i < c.Count%len(p) {
			n++
		}
		if n == 0 {
			continue
		}
		cc := c
		cc.From, cc.Count = from, n
		from += n
		cmds[i] = &cc
	}
	return p.all(cmds)
}

// sum adds the replies up, merging histograms into h when not nil.
func sum(rs []reply, h *histogram) reply {
	var t reply
	for _, r := range rs {
		t.OK += r.OK
		t.Failed += r.Failed
		if t.FirstErr == "" {
			t.FirstErr = r.FirstErr
		}
		t.Seconds = max(t.Seconds, r.Seconds)
		t.Sent += r.Sent
		t.Recv += r.Recv
		t.Other += r.Other
		t.Overflow += r.Overflow
		t.Dropped += r.Dropped
		t.Errors += r.Errors
		t.Closed += r.Closed
		t.Pings += r.Pings
		t.Deflated += r.Deflated
		t.Expected += r.Expected
		t.Dups += r.Dups
		t.Acked += r.Acked
		t.Missed += r.Missed
		t.Resumes += r.Resumes
		t.NotResumed += r.NotResumed
		t.Cuts += r.Cuts
		t.Short += r.Short
		if r.FirstRcv != 0 && (t.FirstRcv == 0 || r.FirstRcv < t.FirstRcv) {
			t.FirstRcv = r.FirstRcv
		}
		t.LastRcv = max(t.LastRcv, r.LastRcv)
		if h != nil {
			h.merge(r.Hist, r.HistMax)
		}
	}
	return t
}
