package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// scenario is one kind of run: the environment of a started server and what
// to do.
type scenario struct {
	env func(*options) []string
	run func(context.Context, *runner) error
}

var scenarios = map[string]scenario{
	"idle":    {env: idleEnv, run: runIdle},
	"fanout":  {env: floodEnv, run: runFanout},
	"binary":  {env: floodEnv, run: runFanout},
	"direct":  {env: floodEnv, run: runDirect},
	"slow":    {env: floodEnv, run: runSlow},
	"burst":   {env: floodEnv, run: runBurst},
	"churn":   {env: floodEnv, run: runChurn},
	"cluster": {env: floodEnv, run: runCluster},
	"api":     {env: apiEnv, run: runAPI},
	"resume":  {env: floodEnv, run: runResume}, // session resume is on by default
}

func idleEnv(o *options) []string {
	return []string{"WSRELAY_PING_INTERVAL=" + o.ping.String()}
}

// floodEnv turns the per-connection rate limit off: publishers send more
// than the default 100 messages a second.
func floodEnv(*options) []string { return []string{"WSRELAY_RATE_MSGS=0"} }

func runIdle(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	rooms, room := o.rooms, "idle-%d"
	switch {
	case rooms == 0:
		rooms = max(1, o.conns/10)
	case rooms < 0: // no room: connections that never send a message
		rooms, room = 0, ""
	}
	if err := r.workers(o.conns); err != nil {
		return err
	}
	base := r.t.settle(ctx, 3*time.Second)
	st0, err := r.t.stats()
	if err != nil {
		return err
	}
	rep, err := r.connect(ctx, "idle", o.conns, room, rooms)
	if err != nil {
		return err
	}
	handshakes := float64(o.conns) / rep.Seconds
	r.quiet(ctx, 10*time.Second)
	loaded := r.t.settle(ctx, 10*time.Second)
	st1, err := r.t.stats()
	if err != nil {
		return err
	}
	before, _ := r.report(nil)
	c0, _ := r.t.read()
	r.measure(true)
	if err := r.wait(ctx, "holding", o.hold); err != nil {
		return err
	}
	c1, _ := r.t.read()
	r.measure(false)
	after, _ := r.report(nil)
	st2, _ := r.t.stats()
	heartbeat := (c1.CPU - c0.CPU) / c1.At.Sub(c0.At).Seconds() * 100
	perConn := float64(loaded.RSS-base.RSS) / float64(o.conns)
	heapPerConn := float64(st1.HeapBytes-st0.HeapBytes) / float64(o.conns)
	pings := after.Pings - before.Pings
	res.set("connections", st1.Connections)
	res.set("rooms", rooms)
	res.set("rss_base_mib", round(mib(base.RSS), 1))
	res.set("rss_loaded_mib", round(mib(loaded.RSS), 1))
	res.set("rss_bytes_per_conn", round(perConn, 0))
	res.set("heap_bytes_per_conn", round(heapPerConn, 0))
	res.set("goroutines_base", st0.Goroutines)
	res.set("goroutines_loaded", st1.Goroutines)
	res.set("goroutines_after_hold", st2.Goroutines)
	res.set("handshakes_per_s", round(handshakes, 0))
	res.set("hold_s", o.hold.Seconds())
	res.set("heartbeat_cpu_pct", round(heartbeat, 2))
	res.set("pings_answered", pings)
	res.set("closed_by_server", after.Closed)
	if r.t.pid != 0 {
		res.set("ping_interval", o.ping.String())
	}
	res.Summary = fmt.Sprintf("%d conns, %.0f B RSS/conn (heap %.0f B), goroutines %d→%d, %.0f handshakes/s, heartbeat %.2f%% of a core (%d pings in %s)",
		st1.Connections, perConn, heapPerConn, st0.Goroutines, st1.Goroutines, handshakes, heartbeat, pings, o.hold)
	if st1.Connections < int64(o.conns) {
		return fmt.Errorf("server holds %d connections, want %d", st1.Connections, o.conns)
	}
	return nil
}

// sender publishes timed messages to room through w.
type sender struct {
	w      *wsConn
	room   string
	size   int
	binary bool
	// jsonFill: the payload is filled with SDP-like text (-payload json).
	jsonFill bool
	buf      []byte
}

func (s *sender) publish(now time.Time) error {
	if s.binary {
		s.buf = frame.AppendClientHeader(s.buf[:0], frame.BinPublish, 0, 0, s.room)
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(now.UnixNano()))
		s.buf = append(s.buf, ts[:]...)
		for i := 8; i < s.size; i++ {
			s.buf = append(s.buf, 'x')
		}
		return s.sendRaw(frame.OpBinary)
	}
	s.buf = append(s.buf[:0], `{"type":"publish","room":"`...)
	s.buf = append(s.buf, s.room...)
	s.buf = append(s.buf, `","data":`...)
	s.buf = appendTimed(s.buf, now.UnixNano(), s.size, s.jsonFill)
	s.buf = append(s.buf, '}')
	return s.sendRaw(frame.OpText)
}

func (s *sender) sendRaw(op byte) error {
	b := frame.AppendMaskedFrame(nil, true, op, [4]byte{}, s.buf)
	_, err := s.w.nc.Write(b)
	return err
}

// fanoutParams are the room size (default 10000), payload size (default
// 64 B) and rate (default 0: as fast as possible) of the fanout and api
// scenarios.
func fanoutParams(o options) (members, size int, rate float64) {
	members, size = o.members, o.size
	if members <= 0 {
		members = 10000
	}
	if size <= 0 {
		size = 64
	}
	return members, size, max(o.rate, 0)
}

// fillRoom starts the workers, connects members peers to room and, when
// publisher is not empty, a peer of the harness by that id; it waits for
// the presence notifications, resets the workers' counters and returns the
// publisher and how long joining took.
func (r *runner) fillRoom(ctx context.Context, room string, members int, publisher string) (*wsConn, time.Duration, error) {
	if err := r.workers(members); err != nil {
		return nil, 0, err
	}
	joinStart := time.Now()
	if _, err := r.connect(ctx, "m", members, room, 0); err != nil {
		return nil, 0, err
	}
	var pub *wsConn
	if publisher != "" {
		var err error
		if pub, err = r.publisher(publisher, room); err != nil {
			return nil, 0, err
		}
	}
	r.quiet(ctx, 5*time.Minute) // peer_joined notifications: N²/2 of them
	joinTime := time.Since(joinStart)
	_, err := r.pool.each(command{Op: "reset"})
	return pub, joinTime, err
}

func runFanout(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	members, size, rate := fanoutParams(o)
	const room = "fanout"
	pub, joinTime, err := r.fillRoom(ctx, room, members, "publisher")
	if err != nil {
		return err
	}
	s := &sender{w: pub, room: room, size: size, binary: o.binary, jsonFill: o.payload == "json"}
	want := int64(members) * int64(o.messages)
	c0, _ := r.t.read()
	st0, _ := r.t.stats()
	r.measure(true)
	start := time.Now()
	sending := publishAll(s, o.messages, rate)
	h := newHistogram()
	limit := 60*time.Second + time.Duration(float64(o.messages)/max(rate, 1)*float64(time.Second))
	if err := r.awaitDeliveries(ctx, want, start, limit); err != nil {
		return err
	}
	c1, _ := r.t.read()
	r.measure(false)
	st1, _ := r.t.stats()
	got, err := r.report(h)
	if err != nil {
		return err
	}
	if err := sending.Err(); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	elapsed := time.Duration(got.LastRcv - start.UnixNano())
	deliveries := got.Recv
	cpu := c1.CPU - c0.CPU
	res.Hist = h
	res.set("members", members)
	res.set("messages", o.messages)
	res.set("payload_bytes", size)
	res.set("frames", map[bool]string{true: "binary", false: "json"}[o.binary])
	res.set("rate", rate)
	res.set("join_s", round(joinTime.Seconds(), 2))
	res.set("deliveries", deliveries)
	res.set("lost", want-deliveries)
	res.set("dropped_reported", got.Dropped)
	res.set("complete_s", round(elapsed.Seconds(), 3))
	res.set("deliveries_per_s", round(float64(deliveries)/elapsed.Seconds(), 0))
	res.set("server_cpu_s", round(cpu, 2))
	res.set("cpu_s_per_million", round(cpu/float64(max(deliveries, 1))*1e6, 2))
	res.set("bytes_out_per_delivery", round(float64(st1.BytesOut-st0.BytesOut)/float64(max(deliveries, 1)), 1))
	res.set("deflated_deliveries", got.Deflated)
	if c1.Writes > 0 {
		// write(2) calls of the server per delivery: below 1 when frames
		// for a recipient are coalesced.
		res.set("writes_per_delivery", round(float64(c1.Writes-c0.Writes)/float64(max(deliveries, 1)), 3))
	}
	res.setLatency("", h, "p50", "p99", "p999")
	res.set("max_ms", ms(time.Duration(h.max)))
	res.set("peak_rss_mib", round(mib(r.t.peakRSS()), 1))
	res.Summary = fmt.Sprintf("%d members × %d msgs (%s, %d B): all delivered in %.3fs, %.0f deliveries/s, %.2f CPU-s/M deliveries, %.0f B sent/delivery (%d compressed), p50 %.2fms p99 %.2fms p999 %.2fms, peak RSS %.0f MiB, lost %d",
		members, o.messages, res.Fields["frames"], size, elapsed.Seconds(), float64(deliveries)/elapsed.Seconds(),
		cpu/float64(max(deliveries, 1))*1e6, float64(st1.BytesOut-st0.BytesOut)/float64(max(deliveries, 1)), got.Deflated,
		ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), mib(r.t.peakRSS()), want-deliveries)
	return nil
}

func runDirect(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	rate := o.rate
	if rate < 0 {
		rate = 20000
	}
	size := o.size
	if size <= 0 {
		size = 64
	}
	pairs := o.pairs
	if pairs <= 0 {
		pairs = 2000
	}
	if err := r.workers(2 * pairs); err != nil {
		return err
	}
	// Each worker gets whole pairs: both peers of a pair live in one process.
	cmds := make([]*command, len(r.pool))
	from := 0
	for i := range r.pool {
		n := pairs / len(r.pool)
		if i < pairs%len(r.pool) {
			n++
		}
		cmds[i] = &command{Op: "connect", URL: r.t.host, Path: r.t.path, Prefix: "d", From: from, Count: 2 * n, Dialers: o.dialers}
		from += 2 * n
	}
	rs, err := r.pool.all(cmds)
	if t := sum(rs, nil); err == nil && t.Failed > 0 {
		err = fmt.Errorf("%d connections failed, first: %s", t.Failed, t.FirstErr)
	}
	if err != nil {
		return err
	}
	for i, c := range cmds {
		share := float64(c.Count/2) / float64(pairs)
		cmds[i] = &command{Op: "direct", Rate: rate * share, For: o.duration, Size: size}
	}
	c0, _ := r.t.read()
	r.measure(true)
	start := time.Now()
	stop := r.progress("sending", func() float64 { return float64(time.Since(start)) / float64(o.duration) })
	rs, err = r.pool.all(cmds)
	stop()
	if err != nil {
		return err
	}
	sent := sum(rs, nil).Sent
	time.Sleep(time.Second) // the last messages in flight
	c1, _ := r.t.read()
	r.measure(false)
	h := newHistogram()
	got, err := r.report(h)
	if err != nil {
		return err
	}
	elapsed := time.Since(start) - time.Second
	res.Hist = h
	res.set("pairs", pairs)
	res.set("rate", rate)
	res.set("achieved_rate", round(float64(sent)/elapsed.Seconds(), 0))
	res.set("sent", sent)
	res.set("received", got.Recv)
	res.set("lost", sent-got.Recv)
	res.setLatency("", h, "p50", "p99", "p999")
	res.set("max_ms", ms(time.Duration(h.max)))
	res.set("server_cpu_pct", round((c1.CPU-c0.CPU)/c1.At.Sub(c0.At).Seconds()*100, 1))
	res.set("cpu_s_per_million", round((c1.CPU-c0.CPU)/float64(max(got.Recv, 1))*1e6, 2))
	res.Summary = fmt.Sprintf("%d pairs at %.0f msg/s (achieved %.0f): p50 %.2fms p99 %.2fms p999 %.2fms, lost %d of %d, server CPU %.0f%% of a core, %.2f CPU-s per million",
		pairs, rate, float64(sent)/elapsed.Seconds(), ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.quantile(0.999)),
		sent-got.Recv, sent, res.Fields["server_cpu_pct"], res.Fields["cpu_s_per_million"])
	return nil
}

// flood publishes size-byte messages to room at rate for d and returns the
// workers' latency histogram and counters after the last delivery.
func (r *runner) flood(ctx context.Context, label string, pub *wsConn, room string, rate float64, d time.Duration, size int) (*histogram, reply, int64, error) {
	if _, err := r.pool.each(command{Op: "reset"}); err != nil {
		return nil, reply{}, 0, err
	}
	s := &sender{w: pub, room: room, size: size, jsonFill: r.o.payload == "json"}
	var sent int64
	start := time.Now()
	stop := r.progress(label, func() float64 { return float64(time.Since(start)) / float64(d) })
	paced(rate, d, func(now time.Time) {
		if s.publish(time.Now()) == nil {
			sent++
		}
	})
	stop()
	r.settleDeliveries(ctx, 15*time.Second)
	h := newHistogram()
	got, err := r.report(h)
	return h, got, sent, err
}

// settleDeliveries waits until the workers have received nothing new for a
// second (the last messages in flight arrived), at most limit.
func (r *runner) settleDeliveries(ctx context.Context, limit time.Duration) {
	end := time.Now().Add(limit)
	last := int64(-1)
	for time.Now().Before(end) && ctx.Err() == nil {
		got, err := r.report(nil)
		if err != nil || got.Recv == last {
			return
		}
		last = got.Recv
		time.Sleep(time.Second)
	}
}

func dropsByReason(t *target) map[string]float64 {
	m, err := t.metrics("wsrelay_messages_dropped_total")
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range m {
		if i := len(`wsrelay_messages_dropped_total{reason="`); len(k) > i+2 {
			out[k[i:len(k)-2]] = v
		}
	}
	return out
}

// dropsSince returns the drops by reason since drops0 (a dropsByReason).
func dropsSince(t *target, drops0 map[string]float64) map[string]float64 {
	drops := map[string]float64{}
	for k, v := range dropsByReason(t) {
		drops[k] = v - drops0[k]
	}
	return drops
}

// peakRSSSince returns the server's highest RSS sampled after mark.
func (r *runner) peakRSSSince(mark time.Time) int64 {
	var peak int64
	for _, s := range r.t.history() {
		if s.At.After(mark) {
			peak = max(peak, s.RSS)
		}
	}
	return peak
}

// readers starts the workers for members readers plus -slow never-readers,
// connects the readers to room and a publisher of the harness.
func (r *runner) readers(ctx context.Context, room string, members int) (*wsConn, error) {
	if err := r.workers(members + r.o.slow); err != nil {
		return nil, err
	}
	if _, err := r.connect(ctx, "n", members, room, 0); err != nil {
		return nil, err
	}
	return r.publisher("publisher", room)
}

// neverReaders connects -slow members of room that never read; what names
// them in an error.
func (r *runner) neverReaders(room, what string) error {
	if r.o.slow <= 0 {
		return nil
	}
	rs, err := r.pool.split(command{Op: "slow", URL: r.t.host, Path: r.t.path, Prefix: "s", Count: r.o.slow, Room: room})
	if t := sum(rs, nil); err == nil && t.Failed > 0 {
		err = fmt.Errorf("%d %s connections failed, first: %s", t.Failed, what, t.FirstErr)
	}
	return err
}

func runSlow(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	members := o.members
	if members <= 0 {
		members = 200
	}
	size := o.size
	if size <= 0 {
		size = 1024
	}
	rate := o.rate
	if rate < 0 {
		rate = 500
	}
	const room = "slow"
	pub, err := r.readers(ctx, room, members)
	if err != nil {
		return err
	}
	r.quiet(ctx, time.Minute)
	h0, got0, sent0, err := r.flood(ctx, "baseline", pub, room, rate, o.duration, size)
	if err != nil {
		return err
	}
	if err := r.neverReaders(room, "slow"); err != nil {
		return err
	}
	r.quiet(ctx, time.Minute)
	drops0 := dropsByReason(r.t)
	rss0 := r.t.settle(ctx, 5*time.Second)
	mark := time.Now()
	r.measure(true)
	h1, got1, sent1, err := r.flood(ctx, "slow peers", pub, room, rate, o.duration, size)
	r.measure(false)
	if err != nil {
		return err
	}
	peak := r.peakRSSSince(mark)
	drops := dropsSince(r.t, drops0)
	queue := int64(256)
	frameCap := int64(2048) // the pooled buffer class of one flood frame
	if size+200 > 2048 {
		frameCap = 16 << 10
	}
	// What the slow peers may hold: each, in nbio's buffer, up to 256 KiB
	// (HighWater) plus one batch of at most 64 KiB, and a full queue of
	// QUEUE_SIZE frames. Frames are shared, but a full queue keeps its
	// oldest ones, so slow peers that stalled at different times hold
	// different frames: at worst QUEUE_SIZE frames each.
	bound := int64(o.slow) * (256<<10 + 64<<10 + queue*(8+frameCap))
	growth := peak - rss0.RSS
	res.Hist, res.Hist0 = h1, h0
	res.set("members", members)
	res.set("slow", o.slow)
	res.set("rate", rate)
	res.set("payload_bytes", size)
	res.setLatency("base_", h0, "p50", "p99")
	res.set("base_lost", sent0*int64(members)-got0.Recv)
	res.setLatency("", h1, "p50", "p99", "p999")
	res.set("lost", sent1*int64(members)-got1.Recv)
	res.set("base_dropped_reported", got0.Dropped)
	res.set("dropped_reported", got1.Dropped)
	res.set("p99_ratio", round(float64(h1.quantile(0.99))/float64(max(h0.quantile(0.99), 1)), 2))
	res.set("rss_before_mib", round(mib(rss0.RSS), 1))
	res.set("rss_growth_mib", round(mib(growth), 1))
	res.set("rss_bound_mib", round(mib(bound), 1))
	res.set("drops", drops)
	res.Summary = fmt.Sprintf("%d normal + %d slow members, %.0f msg/s × %d B: normal p99 %.2fms vs %.2fms without slow peers (×%.2f), RSS growth %.1f MiB (bound %.1f MiB), drops %v, normal members lost %d (%d reported by overflow; without slow peers %d)",
		members, o.slow, rate, size, ms(h1.quantile(0.99)), ms(h0.quantile(0.99)), res.Fields["p99_ratio"], mib(growth), mib(bound), drops,
		sent1*int64(members)-got1.Recv, got1.Dropped, sent0*int64(members)-got0.Recv)
	return nil
}

func runChurn(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	pairs := o.pairs
	if pairs <= 0 {
		pairs = 500
	}
	rate := o.rate
	if rate < 0 {
		rate = 2000
	}
	if err := r.workers(2 * pairs); err != nil {
		return err
	}
	cmds := make([]*command, len(r.pool))
	from := 0
	for i := range r.pool {
		n := pairs / len(r.pool)
		if i < pairs%len(r.pool) {
			n++
		}
		cmds[i] = &command{Op: "connect", URL: r.t.host, Path: r.t.path, Prefix: "d", From: from, Count: 2 * n, Room: "base-%d", Rooms: max(1, pairs/5), Dialers: o.dialers}
		from += 2 * n
	}
	rs, err := r.pool.all(cmds)
	if t := sum(rs, nil); err == nil && t.Failed > 0 {
		err = fmt.Errorf("%d connections failed, first: %s", t.Failed, t.FirstErr)
	}
	if err != nil {
		return err
	}
	r.quiet(ctx, 30*time.Second)
	before := r.t.settle(ctx, 5*time.Second)
	st0, err := r.t.stats()
	if err != nil {
		return err
	}
	for i, c := range cmds {
		share := float64(c.Count/2) / float64(pairs)
		cmds[i] = &command{Op: "direct", Rate: rate * share, For: o.duration, Size: 64}
	}
	// Each round churns while direct messages flow, then lets the server
	// settle and reads it. Warm-up (pools, map buckets, slices that keep
	// their capacity) shows after the first round; a leak keeps growing
	// with every round.
	type reading struct {
		conns, goroutines int64
		heap, rss         int64
	}
	readings := []reading{{st0.Connections, st0.Goroutines, st0.HeapBytes, before.RSS}}
	var churned reply
	var sent, lost, closed int64
	r.measure(true)
	for round := range o.rounds {
		var cr reply
		done := make(chan struct{})
		go func() { // churn runs in the harness process while the workers send
			defer close(done)
			cr = churn(r.local, command{URL: r.t.host, Path: r.t.path, Prefix: fmt.Sprintf("c%d-", round), Rate: o.churnRate,
				For: o.duration, Life: o.life, Room: "base-%d", Rooms: max(1, pairs/5)})
		}()
		start := time.Now()
		stop := r.progress(fmt.Sprintf("churn %d/%d", round+1, o.rounds), func() float64 { return float64(time.Since(start)) / float64(o.duration+o.life) })
		rs, err = r.pool.all(cmds)
		<-done
		stop()
		if err != nil {
			return err
		}
		s := sum(rs, nil).Sent
		time.Sleep(time.Second)
		got, err := r.report(nil)
		if err != nil {
			return err
		}
		if _, err := r.pool.each(command{Op: "reset"}); err != nil {
			return err
		}
		sent += s
		lost += s - got.Recv
		closed += got.Closed
		churned.Sent += cr.Sent
		churned.OK += cr.OK
		churned.Failed += cr.Failed
		churned.Handshakes += cr.Handshakes
		if churned.FirstErr == "" {
			churned.FirstErr = cr.FirstErr
		}
		time.Sleep(2 * time.Second) // closes reach the server, the sweeper lets go
		r.quiet(ctx, 30*time.Second)
		if r.t.srv != nil {
			// In process the heap can be read exactly: collect first.
			runtime.GC()
			debug.FreeOSMemory()
			if round == 0 && r.o.memprofile != "" {
				writeHeapProfile(r.o.memprofile + ".first")
			}
		}
		after := r.t.settle(ctx, 10*time.Second)
		st, err := r.t.stats()
		if err != nil {
			return err
		}
		readings = append(readings, reading{st.Connections, st.Goroutines, st.HeapBytes, after.RSS})
	}
	r.measure(false)
	first, last := readings[1], readings[len(readings)-1]
	var heaps, rsss, gors []float64
	for _, rd := range readings {
		heaps = append(heaps, round(mib(rd.heap), 2))
		rsss = append(rsss, round(mib(rd.rss), 1))
		gors = append(gors, float64(rd.goroutines))
	}
	res.set("base_conns", 2*pairs)
	res.set("churn_rate", o.churnRate)
	res.set("rounds", o.rounds)
	res.set("churned", churned.Sent)
	res.set("churn_ready", churned.OK)
	res.set("churn_failed", churned.Failed)
	res.set("handshakes_failed", churned.Handshakes)
	res.set("churn_first_err", churned.FirstErr)
	res.set("direct_sent", sent)
	res.set("direct_lost", lost)
	res.set("unexpected_closes", closed)
	res.set("connections_before", st0.Connections)
	res.set("connections_after", last.conns)
	res.set("goroutines_per_round", gors)
	res.set("heap_mib_per_round", heaps)
	res.set("rss_mib_per_round", rsss)
	res.set("heap_growth_after_first_round_mib", round(mib(last.heap-first.heap), 2))
	res.set("rss_growth_after_first_round_mib", round(mib(last.rss-first.rss), 1))
	res.Summary = fmt.Sprintf("%d connections churned at %.0f/s over %d steady ones in %d rounds (%s each): %d failed (%d handshakes), %d direct lost of %d, %d unexpected closes; connections %d→%d, goroutines %v, heap MiB %v, RSS MiB %v (before, after each round)",
		churned.Sent, o.churnRate, 2*pairs, o.rounds, o.life, churned.Failed, churned.Handshakes, lost, sent, closed,
		st0.Connections, last.conns, gors, heaps, rsss)
	if last.conns != st0.Connections {
		return fmt.Errorf("connections after churn %d, before %d: %s", last.conns, st0.Connections, res.Summary)
	}
	return nil
}

// publishRun is a publisher sending on its own goroutine.
type publishRun struct {
	mu  sync.Mutex
	err error
}

// publishAll sends messages through s on its own goroutine, as fast as it
// can (rate 0) or paced at rate messages per second.
func publishAll(s *sender, messages int, rate float64) *publishRun {
	p := &publishRun{}
	go func() {
		var err error
		if rate == 0 {
			for range messages {
				if err = s.publish(time.Now()); err != nil {
					break
				}
			}
		} else {
			paced(rate, time.Duration(float64(messages)/rate*float64(time.Second)), func(time.Time) {
				if err == nil {
					err = s.publish(time.Now())
				}
			})
		}
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}()
	return p
}

// Err returns the first publish error, nil if none (so far).
func (p *publishRun) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// awaitDeliveries polls the workers, with a progress bar, until want
// messages arrived, limit passed since start, nothing arrived for 5 s (the
// rest is reported as lost) or ctx ended.
func (r *runner) awaitDeliveries(ctx context.Context, want int64, start time.Time, limit time.Duration) error {
	var recv atomic.Int64
	stop := r.progress("delivering", func() float64 { return float64(recv.Load()) / float64(want) })
	defer stop()
	var stalled time.Time
	var last int64
	for {
		time.Sleep(100 * time.Millisecond)
		rep, err := r.report(nil)
		if err != nil {
			return err
		}
		recv.Store(rep.Recv)
		if rep.Recv >= want || time.Since(start) > limit || ctx.Err() != nil {
			return nil
		}
		if rep.Recv != last {
			last, stalled = rep.Recv, time.Now()
		} else if !stalled.IsZero() && time.Since(stalled) > 5*time.Second {
			return nil // nothing arrives any more: the report shows the loss
		}
	}
}

// runBurst is the flow-control scenario (docs/protocol.md section 9): one
// publisher writes -messages (20,000) of -size (1 KiB) as fast as it can
// into a room of -members (100) that read continuously and -slow (10) that
// never read. It reports what the readers got of what they should have,
// the drops (all of them should be the never-readers'), the pauses, how
// long the publisher took to write everything, and the server's peak RSS.
// Run it with -env WSRELAY_FLOW_CONTROL=false for the version 1 behaviour.
func runBurst(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	members := o.members
	if members <= 0 {
		members = 100
	}
	size := o.size
	if size <= 0 {
		size = 1024
	}
	const room = "burst"
	pub, err := r.readers(ctx, room, members)
	if err != nil {
		return err
	}
	if err := r.neverReaders(room, "never-reading"); err != nil {
		return err
	}
	r.quiet(ctx, time.Minute)
	if _, err := r.pool.each(command{Op: "reset"}); err != nil {
		return err
	}
	flow0, _ := r.t.metrics("wsrelay_flow_")
	drops0 := dropsByReason(r.t)
	rss0 := r.t.settle(ctx, 5*time.Second)
	c0, _ := r.t.read()
	mark := time.Now()
	r.measure(true)

	s := &sender{w: pub, room: room, size: size}
	start := time.Now()
	var pubErr error
	for range o.messages {
		if pubErr = s.publish(time.Now()); pubErr != nil {
			break
		}
	}
	written := time.Since(start)
	if pubErr != nil {
		return fmt.Errorf("publisher: %w", pubErr)
	}
	r.settleDeliveries(ctx, 60*time.Second)
	c1, _ := r.t.read()
	r.measure(false)
	h := newHistogram()
	got, err := r.report(h)
	if err != nil {
		return err
	}
	peak := r.peakRSSSince(mark)
	flow1, _ := r.t.metrics("wsrelay_flow_")
	drops := dropsSince(r.t, drops0)
	want := int64(members) * int64(o.messages)
	pauses := flow1["wsrelay_flow_pauses_total"] - flow0["wsrelay_flow_pauses_total"]
	paused := flow1["wsrelay_flow_paused_seconds_total"] - flow0["wsrelay_flow_paused_seconds_total"]
	// The readers' overflow notices count what they lost; the rest of the
	// queue_full drops are the never-readers'.
	slowDropped := drops["queue_full"] - float64(got.Dropped)
	slowWant := float64(o.slow) * float64(o.messages)
	lastDelivery := time.Duration(got.LastRcv - start.UnixNano())
	res.Hist = h
	res.set("members", members)
	res.set("slow", o.slow)
	res.set("messages", o.messages)
	res.set("payload_bytes", size)
	res.set("delivered", got.Recv)
	res.set("expected", want)
	res.set("delivered_pct", round(100*float64(got.Recv)/float64(max(want, 1)), 2))
	res.set("readers_told_dropped", got.Dropped)
	res.set("drops", drops)
	res.set("never_readers_dropped", slowDropped)
	res.set("never_readers_dropped_pct", round(100*slowDropped/max(slowWant, 1), 1))
	res.set("pauses", pauses)
	res.set("paused_s", round(paused, 2))
	res.set("publisher_s", round(written.Seconds(), 2))
	res.set("all_delivered_s", round(lastDelivery.Seconds(), 2))
	res.set("server_cpu_s", round(c1.CPU-c0.CPU, 2))
	res.setLatency("", h, "p50", "p99")
	res.set("rss_before_mib", round(mib(rss0.RSS), 1))
	res.set("peak_rss_mib", round(mib(peak), 1))
	res.set("rss_growth_mib", round(mib(peak-rss0.RSS), 1))
	res.Summary = fmt.Sprintf("%d msgs × %d B to %d reading + %d never-reading members: readers got %d of %d (%.2f%%), never-readers lost %.0f (%.1f%%), drops %v, %.0f pauses (%.2fs paused), publisher wrote all in %.2fs, last delivery after %.2fs, latency p50 %.1fms p99 %.1fms, server CPU %.1fs, peak RSS %.1f MiB (+%.1f MiB)",
		o.messages, size, members, o.slow, got.Recv, want, res.Fields["delivered_pct"], slowDropped, res.Fields["never_readers_dropped_pct"], drops, pauses, paused,
		written.Seconds(), lastDelivery.Seconds(), ms(h.quantile(0.5)), ms(h.quantile(0.99)), c1.CPU-c0.CPU, mib(peak), mib(peak-rss0.RSS))
	return nil
}
