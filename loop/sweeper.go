package loop

import (
	"sync"
	"time"

	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// sweepTick is the sweeper's resolution: a silent connection is closed at
// most this long after CLIENT_TIMEOUT.
const sweepTick = 250 * time.Millisecond

// ackTick is how often the sweeper serves the connections handed to
// ackLater (session resume), while there are any: frames wait at most about
// this long past the interval between two acknowledging pings. With none
// waiting the sweeper does not wake for them.
const ackTick = 50 * time.Millisecond

// sweeper sends the heartbeat pings, closes silent connections and fails
// key-auth challenges left unanswered past their deadline. It is a
// timing wheel with one slot per tick: a connection sits in the slot of its
// next due time (ping or timeout) and is looked at only then, so a tick costs
// the connections due in it, not all of them. Reads only store a timestamp.
type sweeper struct {
	srv      *Server
	interval time.Duration
	timeout  time.Duration

	mu    sync.Mutex
	fresh []*wsConn    // added since the last tick; guarded by mu
	acks  []*conn.Conn // handed over by conn.Env.AckLater; guarded by mu
	// ackKick wakes the sweeper when acks stops being empty, so that it
	// arms its ackTick timer only while connections wait.
	ackKick chan struct{}

	// Owned by the sweeper goroutine.
	slots [][]*wsConn
	cur   int
	ping  []byte       // scratch for a ping frame
	again []*conn.Conn // acks that AckPing asked to be retried

	done chan struct{}
	wg   sync.WaitGroup
}

func newSweeper(s *Server, interval, timeout time.Duration) *sweeper {
	span := max(interval, timeout)
	n := int(span/sweepTick) + 3
	sw := &sweeper{srv: s, interval: interval, timeout: timeout, slots: make([][]*wsConn, n), ackKick: make(chan struct{}, 1), done: make(chan struct{})}
	sw.wg.Add(1)
	go sw.run()
	return sw
}

// add hands a new connection to the sweeper.
func (sw *sweeper) add(w *wsConn) {
	sw.mu.Lock()
	sw.fresh = append(sw.fresh, w)
	sw.mu.Unlock()
}

// ackLater is conn.Env.AckLater: c gets its ping for the replay buffer from
// the next ticks (conn.Conn.AckPing). It runs under c's lock.
func (sw *sweeper) ackLater(c *conn.Conn) {
	sw.mu.Lock()
	sw.acks = append(sw.acks, c)
	first := len(sw.acks) == 1
	sw.mu.Unlock()
	if first {
		select {
		case sw.ackKick <- struct{}{}:
		default:
		}
	}
}

// pingAcks calls AckPing for the connections handed to ackLater, and keeps
// those it asks to retry for the next tick. It reports whether any wait
// for the next tick.
func (sw *sweeper) pingAcks() (pending bool) {
	sw.mu.Lock()
	acks := sw.acks
	sw.acks = sw.again[:0]
	sw.mu.Unlock()
	again := false
	for i, c := range acks {
		acks[i] = nil
		again, sw.ping = c.AckPing(sw.ping)
		if again {
			sw.mu.Lock()
			sw.acks = append(sw.acks, c)
			sw.mu.Unlock()
		}
	}
	sw.again = acks[:0]
	sw.mu.Lock()
	pending = len(sw.acks) > 0
	sw.mu.Unlock()
	return pending
}

func (sw *sweeper) stop() {
	close(sw.done)
	sw.wg.Wait()
}

func (sw *sweeper) run() {
	defer sw.wg.Done()
	t := time.NewTicker(sweepTick)
	defer t.Stop()
	// The ackTick timer runs only while connections wait for AckPing:
	// acks is its channel then, nil otherwise.
	at := time.NewTimer(ackTick)
	at.Stop()
	defer at.Stop()
	var acks <-chan time.Time
	var fresh []*wsConn
	for {
		select {
		case <-sw.done:
			return
		case <-sw.ackKick:
			if acks == nil {
				at.Reset(ackTick)
				acks = at.C
			}
			continue
		case <-acks:
			acks = nil
			if sw.pingAcks() {
				at.Reset(ackTick)
				acks = at.C
			}
			continue
		case <-t.C:
		}
		now := sw.srv.env.Mono()
		sw.mu.Lock()
		fresh, sw.fresh = sw.fresh, fresh[:0]
		sw.mu.Unlock()
		for i, w := range fresh {
			// nbhttp sets its keepalive read deadline after registering a
			// socket, which can land after the upgrade cleared it: clear it
			// again now that the race is long over.
			_ = w.nbc.SetReadDeadline(time.Time{})
			w.lastPing = now
			if w.Sent() > 0 {
				// With session resume on, its pong acknowledges the first
				// replies (joined, presence) at once, so that they do not
				// stay in the replay buffer for a whole ping interval.
				sw.ping = w.AppendPing(sw.ping[:0])
				w.WriteControl(sw.ping)
			}
			sw.schedule(w, now)
			fresh[i] = nil
		}
		sw.cur = (sw.cur + 1) % len(sw.slots)
		due := sw.slots[sw.cur]
		sw.slots[sw.cur] = nil
		for i, w := range due {
			due[i] = nil
			sw.check(w, now)
		}
		if sw.slots[sw.cur] == nil {
			sw.slots[sw.cur] = due[:0]
		}
	}
}

// check pings or closes w when due and puts it back in the wheel.
func (sw *sweeper) check(w *wsConn, now time.Duration) {
	if w.closed.Load() {
		return
	}
	if w.auth.Load() == authPending && now >= w.authDeadline {
		w.failAuth(errAuthTimeout)
		return
	}
	if now-w.LastSeen() >= sw.timeout && !w.Paused() {
		// Time paused by flow control is not silence: the peer is not
		// read, and resuming counts as a sign of life.
		sw.srv.stats.Evict(stats.EvictTimeout)
		// With resume on the session detaches: the client may come back.
		w.Suspend(w, frame.CloseNormal, "timeout")
		return
	}
	if now-w.lastPing >= sw.interval {
		w.lastPing = now
		sw.ping = w.AppendPing(sw.ping[:0]) // with resume on, it acknowledges what was written before it
		w.WriteControl(sw.ping)
	}
	sw.schedule(w, now)
}

// schedule puts w in the slot of its next due time.
func (sw *sweeper) schedule(w *wsConn, now time.Duration) {
	next := min(w.LastSeen()+sw.timeout, w.lastPing+sw.interval)
	if w.auth.Load() == authPending {
		next = min(next, w.authDeadline)
	}
	ticks := int((next - now + sweepTick - 1) / sweepTick)
	ticks = min(max(ticks, 1), len(sw.slots)-1)
	i := (sw.cur + ticks) % len(sw.slots)
	sw.slots[i] = append(sw.slots[i], w)
}
