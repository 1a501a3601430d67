package conn

import (
	"fmt"
	"strings"
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
	for _, body := range []string{"m4", "m5"} {
		b := textBuf(body)
		c.Enqueue(b)
		bufs = append(bufs, b)
	}
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
	s2 := &fakeSocket{}
	c2 := Adopt(env2, "a", "127.0.0.1", false, h)
	s2.c = c2
	if !c2.Detached() || c2.Numbered() != 5 {
		t.Fatalf("adopted: detached %v, numbered %d; want detached, 5", c2.Detached(), c2.Numbered())
	}
	missed, ok := c2.Attach(s2, 1, welcomeOf("welcome2"))
	if !ok || missed != 0 {
		t.Fatalf("Attach = %d, %v; want 0, true", missed, ok)
	}
	c2.Flush(nil)
	if got := strings.Join(texts(t, s2.Bytes()), ","); got != "welcome2,m2,m3,m4,m5" {
		t.Fatalf("after resume with received 1 on the other node: %s", got)
	}
	bufs = append(bufs, sendAll(c2, "m6")...)
	c2.Ack(6)
	releaseAll(bufs)
	c2.Teardown()
	for i, b := range bufs {
		if b.Refs() != 0 {
			t.Fatalf("frame %d still has %d references", i+1, b.Refs())
		}
	}
}

// A node with a smaller QUEUE_SIZE keeps what fits: the oldest replayable
// frames and the newest queued ones beyond it count as missed.
func TestAdoptSmallerQueue(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1", "m2", "m3", "m4")
	c.Detach(s1)
	for i := 5; i <= 8; i++ {
		b := textBuf(fmt.Sprint("m", i))
		c.Enqueue(b)
		bufs = append(bufs, b)
	}
	h, _ := c.HandOff()
	env2 := newResumeEnv(t, 2)
	before := metric(t, env2.Stats, `wsrelay_messages_dropped_total{reason="queue_full"}`)
	c2 := Adopt(env2, "a", "127.0.0.1", false, h)
	if got := metric(t, env2.Stats, `wsrelay_messages_dropped_total{reason="queue_full"}`) - before; got != 2 {
		t.Fatalf("dropped %v queued frames, want 2", got)
	}
	s2 := &fakeSocket{c: c2}
	missed, ok := c2.Attach(s2, 0, welcomeOf("w"))
	// m1, m2 left the replay buffer; m7, m8 did not fit the queue.
	if !ok || missed != 4 {
		t.Fatalf("Attach = %d, %v; want 4 missed", missed, ok)
	}
	c2.Flush(nil)
	if got := strings.Join(texts(t, s2.Bytes()), ","); got != "w,m3,m4,m5,m6" {
		t.Fatalf("replayed %s", got)
	}
	releaseAll(bufs)
	c2.Teardown()
	for i, b := range bufs {
		if b.Refs() != 0 {
			t.Fatalf("frame %d still has %d references", i+1, b.Refs())
		}
	}
}

// A Handoff that is not adopted gives its references back.
func TestHandoffRelease(t *testing.T) {
	env := newResumeEnv(t, 8)
	c, s1 := newConn(t, env, "a")
	bufs := sendAll(c, "m1")
	c.Detach(s1)
	b := textBuf("m2")
	c.Enqueue(b)
	bufs = append(bufs, b)
	h, _ := c.HandOff()
	h.Release()
	for i, b := range bufs {
		if b.Refs() != 1 {
			t.Fatalf("frame %d: %d references, want the test's only", i+1, b.Refs())
		}
	}
	releaseAll(bufs)
}
