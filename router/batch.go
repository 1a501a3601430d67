package router

import "github.com/wsrelay/wsrelay/conn"

// Batch collects the connections that a routing pass owes a flush, so that
// each is flushed once however many messages it was given. Not safe for
// concurrent use: one goroutine fills it and flushes it.
type Batch struct {
	conns   []*conn.Conn
	scratch []byte

	// Handoff, when above zero, makes Flush hand a pass that touched at
	// least Handoff connections to their Drainer (conn.Defer) instead of
	// writing on the calling goroutine. The reading goroutine then returns
	// to its sockets at once, and while the Drainer works through a large
	// room, further messages for the same recipients join their queues and
	// leave in the same write: under load a recipient gets many frames per
	// write(2), when idle a message still goes out at once.
	Handoff int

	// Sender, when not nil, is the local connection whose messages the
	// pass routes: a recipient that keeps up but whose queue fills may hold
	// it back (flow control, conn.Conn.EnqueueFrom). The reader sets it for
	// its pass and checks conn.Conn.Park after each message.
	Sender *conn.Conn
}

// Flush flushes every collected connection once, or hands them to their
// Drainer (see Handoff), and empties the batch.
func (bt *Batch) Flush() {
	if bt.Handoff > 0 && len(bt.conns) >= bt.Handoff {
		conn.Defer(bt.conns)
		clear(bt.conns)
		bt.conns = bt.conns[:0]
		return
	}
	for i, c := range bt.conns {
		bt.scratch = c.Flush(bt.scratch)
		bt.conns[i] = nil
	}
	bt.conns = bt.conns[:0]
	if cap(bt.scratch) > 256<<10 {
		bt.scratch = nil
	}
}

// Len returns the number of connections waiting for a flush.
func (bt *Batch) Len() int { return len(bt.conns) }

// Add remembers that c is owed a flush (Enqueue returned mustFlush).
func (bt *Batch) Add(c *conn.Conn) { bt.conns = append(bt.conns, c) }
