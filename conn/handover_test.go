package conn

import (
	"testing"
)

// A session moves to another node (HandOff there, Adopt here) and resumes
// exactly as it would have on its own node.
func TestHandOffAdoptReplaysInOrder(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	if c.Greet(textBuf("welcome")) {
		c.Flush(nil)
	}
	bufs := sendAll(c, "m1", "m2", "m3")
	if _, ok := c.HandOff(); ok {
		t.Fatal("HandOff of an attached Conn must fail")
	}
	c.Detach(s1)
	queued, _ := enqueueAll(c, "m4", "m5")
	bufs = append(bufs, queued...)
	before := metric(t, env.Stats, discardedMetric)
	h, ok := c.HandOff()
	if !ok || h.Sent != 3 || len(h.Replay) != 3 || len(h.Queue) != 2 {
		t.Fatalf("HandOff = %+v, %v; want sent 3, 3 replayable, 2 queued", h, ok)
	}
	if got := metric(t, env.Stats, discardedMetric) - before; got != 0 {
		t.Fatalf("HandOff counted %v frames as discarded: they are not lost", got)
	}
	if q, _ := c.Enqueue(bufs[0]); q || c.Detached() {
		t.Fatal("a Conn that handed its session off takes no frames and is not detached")
	}

	// The other node.
	env2 := newResumeEnv(t, 8)
	c2 := Adopt(env2, "a", "127.0.0.1", false, h)
	if !c2.Detached() || c2.Numbered() != 5 {
		t.Fatalf("adopted: detached %v, numbered %d; want detached, 5", c2.Detached(), c2.Numbered())
	}
	attachReplays(t, c2, 1, 0, "welcome2,m2,m3,m4,m5")
	bufs = append(bufs, sendAll(c2, "m6")...)
	c2.Ack(6)
	// Numbers go on where the other node stopped: m6 is number 6.
	if c2.Numbered() != 6 || c2.Replayable() != 0 {
		t.Fatalf("after m6 and Ack(6): numbered %d, replayable %d; want 6, 0", c2.Numbered(), c2.Replayable())
	}
	teardownFrees(t, c2, bufs)
}

// A node with a smaller QUEUE_SIZE keeps what fits: the oldest replayable
// frames and the newest queued ones beyond it count as missed.
func TestAdoptSmallerQueue(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1", "m2", "m3", "m4")
	c.Detach(s1)
	queued, _ := enqueueAll(c, "m5", "m6", "m7", "m8")
	bufs = append(bufs, queued...)
	h, _ := c.HandOff()
	env2 := newResumeEnv(t, 2)
	before := metric(t, env2.Stats, `wsrelay_messages_dropped_total{reason="queue_full"}`)
	c2 := Adopt(env2, "a", "127.0.0.1", false, h)
	if got := metric(t, env2.Stats, `wsrelay_messages_dropped_total{reason="queue_full"}`) - before; got != 2 {
		t.Fatalf("dropped %v queued frames, want 2", got)
	}
	// m1, m2 left the replay buffer; m7, m8 did not fit the queue.
	attachReplays(t, c2, 0, 4, "w,m3,m4,m5,m6")
	teardownFrees(t, c2, bufs)
}

// A Handoff that is not adopted gives its references back.
func TestHandoffRelease(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1")
	c.Detach(s1)
	queued, _ := enqueueAll(c, "m2")
	bufs = append(bufs, queued...)
	h, _ := c.HandOff()
	h.Release()
	for i, b := range bufs {
		if b.Refs() != 1 {
			t.Fatalf("frame %d: %d references, want the test's only", i+1, b.Refs())
		}
	}
	releaseAll(bufs)
}
