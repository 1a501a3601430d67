package loop

import "sync"

// executor runs nbio's per-connection jobs (HTTP handlers and close
// callbacks) on a fixed pool of goroutines.
//
// They cannot run inline on the poller: nbhttp holds a connection's parser
// lock while it runs a request's job, and when that connection is closed
// meanwhile from another goroutine (a deadline timer, a shutdown), its close
// callback joins the same job list, runs next on the poller and takes the
// same lock: the poller deadlocks (seen under the race detector). Nor do they go to nbio's default
// task pool, which blocks the poller when full. Submit never blocks: the
// queue is a slice, bounded in practice by the open connections, since each
// holds at most one request in flight and one close.
type executor struct {
	mu     sync.Mutex
	cond   *sync.Cond
	jobs   []func()
	head   int
	closed bool
	wg     sync.WaitGroup
}

func newExecutor(workers int) *executor {
	e := &executor{}
	e.cond = sync.NewCond(&e.mu)
	for range workers {
		e.wg.Add(1)
		go e.run()
	}
	return e
}

// Submit queues f. After stop, f runs on the caller's goroutine.
func (e *executor) Submit(f func()) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		f()
		return
	}
	e.jobs = append(e.jobs, f)
	e.mu.Unlock()
	e.cond.Signal()
}

func (e *executor) run() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		for e.head == len(e.jobs) && !e.closed {
			e.cond.Wait()
		}
		if e.head == len(e.jobs) {
			e.mu.Unlock()
			return
		}
		f := e.jobs[e.head]
		e.jobs[e.head] = nil
		e.head++
		if e.head == len(e.jobs) {
			e.jobs, e.head = e.jobs[:0], 0
		}
		e.mu.Unlock()
		f()
	}
}

// stop runs what is queued, then ends the workers.
func (e *executor) stop() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cond.Broadcast()
	e.wg.Wait()
}
