package loop

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lesismal/nbio"
)

// gate is the listener nbio accepts from. It hands nbio a new socket only
// once no epoll event of an older socket with the same descriptor number can
// still be pending in the poller the new socket will belong to.
//
// Why: nbio resolves an epoll event by descriptor number. A socket closed
// anywhere but on its poller while that poller handles the socket's own
// event (by a timer, a drain worker, the executor, a write that fails) frees
// its number while an EPOLLHUP or EPOLLERR for it may sit in the batch the
// poller is working through. Registered at once, a new socket accepted on
// that number would be closed by the stale event, before its upgrade
// completes. So the gate holds every accepted socket, unregistered, until
// its poller has started two fresh epoll_wait batches (see fence): by then
// the batch that could hold a stale event is done, and so is the one after
// it, which could hold an event raised while the poller's own read still
// held the old socket open. A stale event found no connection under the
// number meanwhile (nbio clears it before the close) and was ignored. The
// kernel may hand out the number again at once; nbio only sees it later.
//
// Sockets are accepted by one goroutine of the gate and fenced in batches,
// so under churn one fence pass serves every socket accepted meanwhile.
type gate struct {
	// Set at construction.
	ln   net.Listener
	in   chan accepted // from the accepting goroutine to Accept
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	// Set by arm, before armed is closed.
	fences []*fence
	armed  chan struct{}

	closeOnce sync.Once

	// Owned by the goroutine that calls Accept (nbhttp's listener loop).
	ready []*nbio.Conn
	batch []accepted
	err   error // a listener error met while batching, returned next
}

// accepted is a socket the gate accepted, converted for nbio, or the error
// the listener returned.
type accepted struct {
	c   *nbio.Conn
	err error
}

// gateBatch bounds the sockets accepted ahead of nbio: the gate holds at
// most this many open and unregistered (plus the batch being fenced).
const gateBatch = 256

func newGate(ln net.Listener) *gate {
	g := &gate{
		ln:    ln,
		in:    make(chan accepted, gateBatch),
		done:  make(chan struct{}),
		armed: make(chan struct{}),
	}
	g.wg.Add(1)
	go g.acceptLoop()
	return g
}

// arm gives the gate one fence per poller of engine, which must be started.
// Accept waits until arm ran.
func (g *gate) arm(engine *nbio.Engine) error {
	n := engine.NPoller
	g.fences = make([]*fence, n)
	for i := range n {
		f, err := newFence(engine, i, n)
		if err != nil {
			for _, f := range g.fences[:i] {
				f.close()
			}
			g.fences = nil
			return err
		}
		g.fences[i] = f
	}
	close(g.armed)
	return nil
}

func (g *gate) acceptLoop() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		var a accepted
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case err != nil:
			// Out of descriptors and the like: report it, and do not spin.
			a.err = err
			time.Sleep(10 * time.Millisecond)
		default:
			a.c, a.err = nbio.NBConn(c)
			if a.err != nil {
				_ = c.Close()
			}
		}
		select {
		case g.in <- a:
		case <-g.done:
			if a.c != nil {
				_ = a.c.Close()
			}
			return
		}
	}
}

// Accept implements net.Listener: it returns the next accepted socket as an
// *nbio.Conn once its poller is fenced.
func (g *gate) Accept() (net.Conn, error) {
	for len(g.ready) == 0 {
		if err := g.err; err != nil {
			g.err = nil
			return nil, err
		}
		select {
		case <-g.armed:
		case <-g.done:
			return nil, net.ErrClosed
		}
		var a accepted
		select {
		case a = <-g.in:
		case <-g.done:
			return nil, net.ErrClosed
		}
		if a.err != nil {
			return nil, a.err
		}
		g.batch = append(g.batch[:0], a)
	more:
		for len(g.batch) < gateBatch {
			select {
			case a = <-g.in:
				if a.err != nil {
					g.err = a.err // returned once this batch is handed out
					break more
				}
				g.batch = append(g.batch, a)
			default:
				break more
			}
		}
		if err := g.fence(); err != nil {
			for _, a := range g.batch {
				_ = a.c.Close()
			}
			return nil, err
		}
		for i, a := range g.batch {
			g.ready = append(g.ready, a.c)
			g.batch[i] = accepted{}
		}
	}
	c := g.ready[0]
	g.ready[0] = nil
	g.ready = g.ready[1:]
	if len(g.ready) == 0 {
		g.ready = g.ready[:0:0]
	}
	return c, nil
}

// fence waits until the poller of every socket in the batch started two
// epoll_wait batches after the socket was accepted.
func (g *gate) fence() error {
	var need [64]bool
	var pollers []int
	for _, a := range g.batch {
		i := a.c.Hash() % len(g.fences)
		if i < len(need) && need[i] {
			continue
		}
		if i < len(need) {
			need[i] = true
		}
		pollers = append(pollers, i)
	}
	for range 2 {
		for _, i := range pollers {
			g.fences[i].knock()
		}
		for _, i := range pollers {
			if !g.fences[i].wait(g.done) {
				return net.ErrClosed
			}
		}
	}
	return nil
}

// Close implements net.Listener. It stops the accepting goroutine and waits
// for it, and closes the sockets not handed out yet.
func (g *gate) Close() error {
	var err error
	g.closeOnce.Do(func() {
		close(g.done)
		err = g.ln.Close()
		g.wg.Wait()
		for {
			select {
			case a := <-g.in:
				if a.c != nil {
					_ = a.c.Close()
				}
				continue
			default:
			}
			break
		}
		for _, f := range g.fences {
			f.close()
		}
	})
	return err
}

// Addr implements net.Listener.
func (g *gate) Addr() net.Addr { return g.ln.Addr() }

// fence proves that one poller started a new epoll_wait batch: a socket pair
// whose reading end is registered on that poller. knock writes a byte into
// the other end; the poller reads it only in a batch filled after the write,
// and wait returns once it did.
type fence struct {
	w      int        // the writing end, not registered
	r      *nbio.Conn // the reading end, on the fence's poller
	passes atomic.Uint64
	seen   chan struct{} // a pass after the last knock; buffered 1
	knocks uint64        // owned by the gate's Accept goroutine
}

// newFence makes the fence of poller i of n. nbio assigns a socket to the
// poller of its descriptor number modulo n, so the reading end is
// duplicated until its number falls there.
func newFence(engine *nbio.Engine, i, n int) (*fence, error) {
	var fds [2]int
	var err error
	syscall.ForkLock.RLock()
	fds, err = syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("loop: fence socket pair: %w", err)
	}
	if err := syscall.SetNonblock(fds[1], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, fmt.Errorf("loop: fence socket pair: %w", err)
	}
	f := &fence{w: fds[1], seen: make(chan struct{}, 1)}
	file := os.NewFile(uintptr(fds[0]), "fence")
	defer file.Close()
	var spare []*nbio.Conn
	defer func() {
		for _, c := range spare {
			_ = c.Close()
		}
	}()
	for range 4*n + 16 {
		nc, err := net.FileConn(file) // a duplicate of the reading end
		if err != nil {
			break
		}
		c, err := nbio.NBConn(nc) // duplicates again and closes nc
		if err != nil {
			_ = nc.Close()
			break
		}
		if c.Hash()%n != i {
			spare = append(spare, c) // hold the number, try the next one
			continue
		}
		c.OnData(f.onData)
		if _, err := engine.AddConn(c); err != nil {
			syscall.Close(f.w)
			return nil, fmt.Errorf("loop: fence of poller %d: %w", i, err)
		}
		f.r = c
		return f, nil
	}
	syscall.Close(f.w)
	return nil, fmt.Errorf("loop: no descriptor for the fence of poller %d", i)
}

// onData runs on the fence's poller with the bytes it read.
func (f *fence) onData(*nbio.Conn, []byte) {
	f.passes.Add(1)
	select {
	case f.seen <- struct{}{}:
	default:
	}
}

// knock writes one byte for the poller to read. The pair never holds more
// than a byte: each knock is waited for before the next.
func (f *fence) knock() {
	f.knocks = f.passes.Load()
	for {
		_, err := syscall.Write(f.w, []byte{1})
		if !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// wait returns true once the poller read after the last knock, false if
// done closed first.
func (f *fence) wait(done <-chan struct{}) bool {
	for f.passes.Load() == f.knocks {
		select {
		case <-f.seen:
		case <-done:
			return false
		}
	}
	return true
}

func (f *fence) close() {
	syscall.Close(f.w) // the poller reads EOF and closes the reading end
}
