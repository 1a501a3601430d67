package router

import "github.com/wsrelay/wsrelay/conn"

// Batch collects the connections that a routing pass owes a flush, so that
// each is flushed once however many messages it was given. Not safe for
// concurrent use: one goroutine fills it and flushes it.
type Batch struct {
	conns   []*conn.Conn
	scratch []byte
}

// Flush flushes every collected connection once and empties the batch.
func (bt *Batch) Flush() {
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
