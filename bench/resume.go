package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// resumeParams are the resume scenario's settings with their defaults.
type resumeParams struct {
	peers, roomSize int
	rate            float64 // messages per second over all peers
	cut             float64 // share of the connections cut every second
	outage          time.Duration
	detach          int           // sessions detached at once for the memory reading
	hold            time.Duration // how long they stay detached while messages flow
}

func resumeSettings(o options) resumeParams {
	p := resumeParams{peers: o.peers, roomSize: o.roomSize, rate: o.rate, cut: o.cut, outage: o.outage, hold: o.hold}
	if p.peers <= 0 {
		p.peers = 1000
	}
	if p.roomSize <= 0 {
		p.roomSize = 10
	}
	p.roomSize = min(p.roomSize, p.peers)
	if p.rate < 0 {
		p.rate = 1000
	}
	p.cut = min(max(p.cut, 0), 1)
	p.detach = int(min(max(o.detach, 0), 1) * float64(p.peers))
	return p
}

// runResume is the session resume scenario (docs/protocol.md section 10):
// -peers in rooms of -room-size publish -rate messages a second between
// them for -duration, while every second a share -cut of the connections
// is cut without a close frame and resumed after -outage with
// GET /ws?resume=TOKEN&received=N. Every receiver should get each message
// its room mates got an ack for exactly once. Then -detach sessions stay
// detached for -hold while messages flow, and the server's memory is read
// while they are away and after they are back.
func runResume(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	p := resumeSettings(o)
	if p.rate == 0 {
		return fmt.Errorf("-rate must be above 0: the peers publish at a pace")
	}
	if err := r.workers(p.peers); err != nil {
		return err
	}
	// Each worker gets whole rooms: a message and its receivers live in
	// one process, so each receiver's due is known there.
	rooms := (p.peers + p.roomSize - 1) / p.roomSize
	cmds := make([]*command, len(r.pool))
	shares := make([]float64, len(r.pool))
	from := 0
	for i := range r.pool {
		n := rooms / len(r.pool)
		if i < rooms%len(r.pool) {
			n++
		}
		count := min(n*p.roomSize, p.peers-from)
		if count <= 0 {
			continue
		}
		cmds[i] = &command{Op: "resume-connect", URL: r.t.host, Path: r.t.path, Prefix: "r", From: from,
			Count: count, RoomSize: p.roomSize, Dialers: o.dialers}
		shares[i] = float64(count) / float64(p.peers)
		from += count
	}
	rs, err := r.pool.all(cmds)
	if t := sum(rs, nil); err == nil && t.Failed > 0 {
		err = fmt.Errorf("%d of %d sessions failed, first: %s", t.Failed, p.peers, t.FirstErr)
	}
	if err != nil {
		return err
	}
	r.quiet(ctx, time.Minute)
	if _, err := r.pool.each(command{Op: "reset"}); err != nil {
		return err
	}
	each := func(c command, scale func(*command, float64)) ([]reply, error) {
		cs := make([]*command, len(r.pool))
		for i := range cmds {
			if cmds[i] != nil {
				cc := c
				if scale != nil {
					scale(&cc, shares[i])
				}
				cs[i] = &cc
			}
		}
		return r.pool.all(cs)
	}
	perWorkerRate := func(c *command, share float64) { c.Rate = p.rate * share }

	// Traffic with cuts and resumes.
	c0, _ := r.t.read()
	r.measure(true)
	start := time.Now()
	stop := r.progress("cutting", func() float64 { return float64(time.Since(start)) / float64(o.duration) })
	rs, err = each(command{Op: "resume-run", For: o.duration, Cut: p.cut, Life: p.outage}, perWorkerRate)
	stop()
	if err != nil {
		return err
	}
	c1, _ := r.t.read()
	r.measure(false)
	runSent := sum(rs, nil).Sent
	lat := newHistogram() // delivery latency of the phase with cuts, replays apart
	if _, err := r.report(lat); err != nil {
		return err
	}
	if _, err := r.settleResume(ctx, each, nil, nil); err != nil {
		return err
	}

	// Memory of detached sessions: the server read while messages flow,
	// before a batch detaches, while it is away (the messages routed to it
	// queued) and after it is back.
	var before, away, back memReading
	if p.detach > 0 {
		window := func() (memReading, error) {
			return r.readWhile(ctx, p.hold, func() error {
				_, err := each(command{Op: "resume-run", For: p.hold}, perWorkerRate)
				return err
			})
		}
		if before, err = window(); err != nil {
			return err
		}
		if _, err := each(command{Op: "resume-detach"}, func(c *command, share float64) { c.Count = int(float64(p.detach)*share + 0.5) }); err != nil {
			return err
		}
		if away, err = window(); err != nil {
			return err
		}
		if _, err := each(command{Op: "resume-attach"}, nil); err != nil {
			return err
		}
		if back, err = window(); err != nil {
			return err
		}
	}
	h, hb := newHistogram(), newHistogram()
	got, err := r.settleResume(ctx, each, h, hb)
	if err != nil {
		return err
	}
	lost := got.Expected - got.Recv
	elapsed := c1.At.Sub(c0.At).Seconds()
	res.set("peers", p.peers)
	res.set("room_size", p.roomSize)
	res.set("rate", p.rate)
	res.set("cut_per_s", p.cut)
	res.set("outage_ms", p.outage.Milliseconds())
	res.set("duration_s", o.duration.Seconds())
	res.set("sent", got.Sent)
	res.set("sent_during_cuts", runSent)
	res.set("acked", got.Acked)
	res.set("expected", got.Expected)
	res.set("received", got.Recv)
	res.set("lost", lost)
	res.set("duplicates", got.Dups)
	res.set("receivers_short", got.Short)
	res.set("cuts", got.Cuts)
	res.set("resumes", got.Resumes)
	res.set("resumed_false", got.NotResumed)
	res.set("missed", got.Missed)
	res.set("unexpected_closes", got.Closed)
	res.set("errors", got.Errors)
	res.set("first_error", got.FirstErr)
	res.Hist = lat
	res.setLatency("latency_", lat, "p50", "p99")
	res.setLatency("resume_", h, "p50", "p99")
	res.set("resume_max_ms", ms(time.Duration(h.max)))
	res.setLatency("reattach_", hb, "p50", "p99")
	res.set("server_cpu_pct", round((c1.CPU-c0.CPU)/max(elapsed, 1e-9)*100, 1))
	res.set("detach", p.detach)
	res.set("hold_s", p.hold.Seconds())
	res.set("detached_gauge", away.detached)
	res.set("detached_gauge_after", back.detached)
	res.set("heap_before_mib", round(mib(before.heap), 2))
	res.set("heap_detached_mib", round(mib(away.heap), 2))
	res.set("heap_after_mib", round(mib(back.heap), 2))
	res.set("rss_before_mib", round(mib(before.rss), 1))
	res.set("rss_detached_mib", round(mib(away.rss), 1))
	res.set("rss_after_mib", round(mib(back.rss), 1))
	// Per detached session only from an exact reading: a child's heap is
	// sampled between collections, and its garbage outweighs the sessions.
	perDetached := ""
	res.set("heap_exact", r.t.srv != nil)
	if r.t.srv != nil && away.detached > 0 {
		b := float64(away.heap-before.heap) / away.detached
		res.set("heap_bytes_per_detached", round(b, 0))
		perDetached = fmt.Sprintf(", %.0f B per detached session", b)
	} else {
		perDetached = ", sampled: use -inproc for an exact reading"
	}
	res.set("peak_rss_mib", round(mib(r.t.peakRSS()), 1))
	res.Summary = fmt.Sprintf("%d peers in rooms of %d, %.0f msg/s, %.0f%% cut/s for %s (outage %s): %d cuts, %d resumes (%d resumed:false, missed %d), resume p50 %.2fms p99 %.2fms, live delivery latency p50 %.2fms p99 %.2fms; lost %d of %d (%d receivers short), %d duplicates",
		p.peers, p.roomSize, p.rate, p.cut*100, o.duration, p.outage, got.Cuts, got.Resumes, got.NotResumed, got.Missed,
		ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(lat.quantile(0.5)), ms(lat.quantile(0.99)), lost, got.Expected, got.Short, got.Dups)
	if p.detach > 0 {
		res.Summary += fmt.Sprintf("; %.0f detached for %s: heap %.2f→%.2f→%.2f MiB (before, away, back%s), RSS %.1f→%.1f→%.1f MiB, all resumed at once in p50 %.2fms p99 %.2fms",
			away.detached, p.hold, mib(before.heap), mib(away.heap), mib(back.heap), perDetached, mib(before.rss), mib(away.rss), mib(back.rss),
			ms(hb.quantile(0.5)), ms(hb.quantile(0.99)))
	}
	if got.Errors > 0 {
		return fmt.Errorf("%d errors, first: %s: %s", got.Errors, got.FirstErr, res.Summary)
	}
	return nil
}

// settleResume polls the workers' accounting until it stays unchanged for
// 300 ms (acks and deliveries in flight arrived), at most 15 s, and
// returns it, with the resume times of the cuts merged into h and those of
// the detached batch into hb when not nil.
func (r *runner) settleResume(ctx context.Context, each func(command, func(*command, float64)) ([]reply, error), h, hb *histogram) (reply, error) {
	end := time.Now().Add(15 * time.Second)
	var last reply
	for first := true; ; first = false {
		rs, err := each(command{Op: "resume-report"}, nil)
		if err != nil {
			return reply{}, err
		}
		got := sum(rs, nil)
		if (!first && got.Recv == last.Recv && got.Acked == last.Acked && got.Dups == last.Dups) ||
			time.Now().After(end) || ctx.Err() != nil {
			if hb != nil {
				for _, x := range rs {
					hb.merge(x.BurstHist, x.BurstHistMax)
				}
			}
			return sum(rs, h), ctx.Err()
		}
		last = got
		time.Sleep(300 * time.Millisecond)
	}
}

// memReading is the server's memory over a window of traffic.
type memReading struct {
	heap     int64   // live heap: after a collection (-inproc), else the lowest sampled in the second half
	rss      int64   // RSS at the end
	detached float64 // wsrelay_sessions_detached at the end
}

// readWhile runs traffic (d long) and samples the server's heap from
// /stats meanwhile. The lowest heap of the window's second half is taken:
// the heap in use swings with garbage between collections, its low points
// are what is live (an estimate: with -inproc the heap is read after a
// collection, exactly).
func (r *runner) readWhile(ctx context.Context, d time.Duration, traffic func() error) (memReading, error) {
	done := make(chan error, 1)
	go func() { done <- traffic() }()
	var m memReading
	half := time.Now().Add(d / 2)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return m, err
			}
			if s, err := r.t.read(); err == nil {
				m.rss = s.RSS
			}
			g, _ := r.t.metrics("wsrelay_sessions_detached")
			m.detached = g["wsrelay_sessions_detached"]
			if r.t.srv != nil || m.heap == 0 {
				// In process the live heap can be read exactly: collect
				// first. Otherwise the window was too short to sample.
				if r.t.srv != nil {
					runtime.GC() // twice: pooled buffers go on the second
					runtime.GC()
				}
				st, err := r.t.stats()
				m.heap = st.HeapBytes
				return m, err
			}
			return m, nil
		case <-tick.C:
			if time.Now().Before(half) || ctx.Err() != nil {
				continue
			}
			if st, err := r.t.stats(); err == nil && (m.heap == 0 || st.HeapBytes < m.heap) {
				m.heap = st.HeapBytes
			}
		}
	}
}
