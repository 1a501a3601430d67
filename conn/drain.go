package conn

import "sync"

// Drainer flushes connections whose sockets drained below their high-water
// mark, the recipients of large fan-outs (Defer), and closes lingering ones,
// on a fixed pool of goroutines. Schedule never blocks; it is called under
// the transport's locks.
type Drainer struct {
	mu      sync.Mutex
	pending []*Conn
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewDrainer starts workers goroutines. Stop waits for them.
func NewDrainer(workers int) *Drainer {
	d := &Drainer{wake: make(chan struct{}, 1), done: make(chan struct{})}
	for range workers {
		d.wg.Add(1)
		go d.run()
	}
	return d
}

// Schedule asks a worker to Flush c.
func (d *Drainer) Schedule(c *Conn) {
	d.mu.Lock()
	d.pending = append(d.pending, c)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// ScheduleAll asks the workers to Flush every connection of cs, with one
// lock and one wake-up. cs may be reused when it returns.
func (d *Drainer) ScheduleAll(cs []*Conn) {
	d.mu.Lock()
	d.pending = append(d.pending, cs...)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Defer hands the flushes the caller owes cs (Enqueue returned mustFlush)
// to their Env's Drainer, which then owns them; a Conn without a Drainer is
// flushed at once. cs may be reused when it returns.
func Defer(cs []*Conn) {
	for len(cs) > 0 {
		d := cs[0].env.Drainer
		n := 1
		for n < len(cs) && cs[n].env.Drainer == d {
			n++
		}
		if d != nil {
			d.ScheduleAll(cs[:n])
		} else {
			for _, c := range cs[:n] {
				c.Flush(nil)
			}
		}
		cs = cs[n:]
	}
}

// Stop ends the workers. Work scheduled but not yet started may be
// skipped: the server stops the Drainer last, once its sockets are closed.
func (d *Drainer) Stop() {
	close(d.done)
	d.wg.Wait()
}

const drainChunk = 256

func (d *Drainer) run() {
	defer d.wg.Done()
	var scratch []byte
	var work []*Conn
	for {
		select {
		case <-d.wake:
		case <-d.done:
			return
		}
		for {
			d.mu.Lock()
			n := min(len(d.pending), drainChunk)
			work = append(work[:0], d.pending[:n]...)
			rest := copy(d.pending, d.pending[n:])
			clear(d.pending[rest:])
			d.pending = d.pending[:rest]
			more := rest > 0
			d.mu.Unlock()
			if n == 0 {
				break
			}
			if more {
				select {
				case d.wake <- struct{}{}:
				default:
				}
			}
			for i, c := range work {
				scratch = c.Flush(scratch)
				work[i] = nil
			}
			if cap(scratch) > maxBatchBytes*2 {
				scratch = nil
			}
		}
	}
}
