package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// runner holds what one run uses: the target relay, the worker processes and
// the harness's own client engine (publishers, churn).
type runner struct {
	o        options
	scenario string
	out      io.Writer
	res      *result

	t     *target
	pool  pool
	local *engine
	prof  *os.File // CPU profile in progress

	nats  *natsserver.Server // cluster: the embedded NATS server
	nodes []*target          // cluster: the nodes beyond the first (t)
}

// maxPerProc is how many client connections one worker holds at most: the
// open-file limit is 20,000 here and a worker needs a few spare descriptors.
const maxPerProc = 15000

func (r *runner) setup(env []string) error {
	var err error
	switch {
	case r.scenario == "cluster":
		err = r.setupCluster(env)
	case r.o.url != "":
		r.t, err = remoteTarget(r.o.url)
	case r.o.inproc:
		r.t, err = inprocServer(append(env, r.o.env...))
	default:
		r.t, err = startServer(r.o.server, append(env, r.o.env...))
	}
	if err != nil {
		return err
	}
	r.res.Start = time.Now()
	r.t.startSampler(250 * time.Millisecond)
	r.local, err = newEngine("bench")
	if err != nil {
		return err
	}
	r.local.offerDeflate.Store(r.o.compress)
	return nil
}

// workers starts n worker processes, or enough for conns connections.
func (r *runner) workers(conns int) error {
	n := r.o.procs
	if n <= 0 {
		n = max(1, (conns+maxPerProc-1)/maxPerProc)
	}
	p, err := startPool(n, workerFlags(&r.o))
	r.pool = p
	return err
}

// measure marks the start (true) and the end (false) of a scenario's
// measured phase: the CPU profile covers it, the heap profile is taken at
// its end.
func (r *runner) measure(start bool) {
	if start {
		if r.o.cpuprofile != "" {
			f, err := os.Create(r.o.cpuprofile)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintf(r.out, "bench: cpuprofile: %v\n", err)
				return
			}
			r.prof = f
		}
		return
	}
	if r.prof != nil {
		pprof.StopCPUProfile()
		r.prof.Close()
		r.prof = nil
	}
	if r.o.memprofile != "" {
		if err := writeHeapProfile(r.o.memprofile); err != nil {
			fmt.Fprintf(r.out, "bench: memprofile: %v\n", err)
		}
	}
}

// writeHeapProfile writes the heap profile after a collection.
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = pprof.WriteHeapProfile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// teardown stops everything the run started; it reports a worker that
// failed.
func (r *runner) teardown() error {
	if r.prof != nil {
		r.measure(false)
	}
	var err error
	if r.pool != nil {
		err = r.pool.stop()
	}
	if r.local != nil {
		r.local.closing.Store(true)
		r.local.stop()
	}
	r.closeNodes()
	if r.t != nil {
		r.t.stopSampler()
		r.res.Samples = r.t.history()
		r.t.close()
	}
	r.closeNATS()
	return err
}

// connect opens count connections over the workers, with progress, and
// returns the summed reply.
func (r *runner) connect(ctx context.Context, prefix string, count int, room string, rooms int) (reply, error) {
	stop := r.progress("connecting", func() float64 {
		s, err := r.t.stats()
		if err != nil {
			return 0
		}
		return float64(s.Connections) / float64(count)
	})
	rs, err := r.pool.split(command{Op: "connect", URL: r.t.host, Path: r.t.path, Prefix: prefix,
		Count: count, Room: room, Rooms: rooms, Dialers: r.o.dialers, Bind: r.o.bind})
	stop()
	t := sum(rs, nil)
	if err != nil {
		return t, err
	}
	if t.Failed > 0 {
		return t, fmt.Errorf("%d of %d connections failed, first: %s", t.Failed, count, t.FirstErr)
	}
	return t, ctx.Err()
}

// publisher connects one peer of the harness itself to room.
func (r *runner) publisher(peer, room string) (*wsConn, error) {
	ready := make(chan error, 1)
	w, err := r.local.dial(r.t.host, r.t.path, peer, room, ready)
	if err != nil {
		return nil, err
	}
	select {
	case err := <-ready:
		return w, err
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("publisher %s: not ready in 30 s", peer)
	}
}

// report gathers the workers' counters, merging latency into h when not nil.
func (r *runner) report(h *histogram) (reply, error) {
	rs, err := r.pool.each(command{Op: "report"})
	return sum(rs, h), err
}

// quiet waits until the server's messages_out stays unchanged for 500 ms
// (presence notifications delivered), at most limit.
func (r *runner) quiet(ctx context.Context, limit time.Duration) {
	end := time.Now().Add(limit)
	var last int64 = -1
	for time.Now().Before(end) && ctx.Err() == nil {
		s, err := r.t.stats()
		if err != nil {
			return
		}
		if s.MessagesOut == last {
			return
		}
		last = s.MessagesOut
		time.Sleep(500 * time.Millisecond)
	}
}

// progress draws a bar on stderr (when it is a terminal and -q is not set)
// from frac, every 200 ms, until the returned stop is called.
func (r *runner) progress(label string, frac func() float64) (stop func()) {
	if r.o.quiet || !isTerminal(os.Stderr) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(os.Stderr, "\r%s\r", strings.Repeat(" ", 72))
				return
			case <-t.C:
			}
			f := math.Min(math.Max(frac(), 0), 1)
			n := int(f * 30)
			fmt.Fprintf(os.Stderr, "\r%-12s [%s%s] %5.1f%% %6.1fs", label, strings.Repeat("#", n), strings.Repeat(".", 30-n), f*100, time.Since(start).Seconds())
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// wait sleeps d with a progress bar.
func (r *runner) wait(ctx context.Context, label string, d time.Duration) error {
	start := time.Now()
	stop := r.progress(label, func() float64 { return float64(time.Since(start)) / float64(d) })
	defer stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
