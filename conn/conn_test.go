package conn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSocket is a Socket that keeps what it is given. Like the event loop's
// transport it reports the bytes that "reached the kernel" through
// Conn.Written, synchronously inside Write, unless it is stalled: then it
// keeps them unreported, as for a peer that does not read, until drain.
type fakeSocket struct {
	c       *Conn
	discard bool // count writes but keep no bytes (benchmarks)

	mu         sync.Mutex
	stalled    bool
	writes     [][]byte // a copy of every Write, in order
	nwrites    int
	unreported int // bytes written while stalled
	closes     int
}

func (s *fakeSocket) Write(b []byte) (int, error) {
	s.mu.Lock()
	s.nwrites++
	if !s.discard {
		s.writes = append(s.writes, bytes.Clone(b))
	}
	stalled := s.stalled
	if stalled {
		s.unreported += len(b)
	}
	s.mu.Unlock()
	if !stalled {
		s.c.Written(len(b))
	}
	return len(b), nil
}

func (s *fakeSocket) Close() error {
	s.mu.Lock()
	s.closes++
	s.mu.Unlock()
	return nil
}

// stall makes the socket stop reporting written bytes.
func (s *fakeSocket) stall() {
	s.mu.Lock()
	s.stalled = true
	s.mu.Unlock()
}

// drain reports every byte kept since stall as written and resumes normal
// operation, as when a slow peer finally reads.
func (s *fakeSocket) drain() {
	s.mu.Lock()
	n := s.unreported
	s.unreported, s.stalled = 0, false
	s.mu.Unlock()
	s.c.Written(n)
}

// Writes returns a copy of the list of writes so far.
func (s *fakeSocket) Writes() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.writes...)
}

// Bytes returns everything written, concatenated.
func (s *fakeSocket) Bytes() []byte {
	return bytes.Join(s.Writes(), nil)
}

func (s *fakeSocket) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closes > 0
}

// newEnv returns an Env with its own stats and a one-worker Drainer that is
// stopped when the test ends. highWater 0 keeps the default.
func newEnv(t testing.TB, queueSize int, highWater int64) *Env {
	t.Helper()
	d := NewDrainer(1)
	t.Cleanup(d.Stop)
	env := NewEnv(queueSize, stats.New(metrics.NewSet(), 0), d)
	if highWater > 0 {
		env.HighWater = highWater
	}
	return env
}

func newConn(t testing.TB, env *Env, id string) (*Conn, *fakeSocket) {
	t.Helper()
	s := &fakeSocket{}
	c := New(env, id, "192.0.2.1", s)
	s.c = c
	return c, s
}

// textBuf returns a finished text frame with body; the test holds its one
// reference.
func textBuf(body string) *frame.Buf {
	b := frame.NewBuf(len(body))
	b.B = append(b.B, body...)
	b.Finish(frame.OpText)
	return b
}

// paddedBuf returns a text frame whose body starts with tag and is padded
// to size bytes, so every frame is distinct.
func paddedBuf(tag string, size int) *frame.Buf {
	return textBuf(tag + strings.Repeat(".", size-len(tag)))
}

type wsFrame struct {
	op      byte
	payload []byte
}

// parseFrames splits a server-to-client byte stream into unmasked, final
// WebSocket frames (RFC 6455 section 5.2), failing on anything else.
func parseFrames(t testing.TB, b []byte) []wsFrame {
	t.Helper()
	var out []wsFrame
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated frame header % x", b)
		}
		if b[0]&0xF0 != 0x80 {
			t.Fatalf("first byte %#x: want FIN and no RSV bits", b[0])
		}
		if b[1]&0x80 != 0 {
			t.Fatal("server frame is masked")
		}
		op := b[0] & 0x0F
		n, rest := uint64(b[1]&0x7F), b[2:]
		switch n {
		case 126:
			n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
		case 127:
			n, rest = binary.BigEndian.Uint64(rest), rest[8:]
		}
		if uint64(len(rest)) < n {
			t.Fatalf("frame of %d payload bytes, only %d follow", n, len(rest))
		}
		out = append(out, wsFrame{op: op, payload: rest[:n]})
		b = rest[n:]
	}
	return out
}

// parseClose returns the code and reason of a close frame.
func parseClose(t testing.TB, f wsFrame) (int, string) {
	t.Helper()
	if f.op != frame.OpClose {
		t.Fatalf("opcode %d, want close (8)", f.op)
	}
	if len(f.payload) < 2 {
		t.Fatalf("close payload %q has no code", f.payload)
	}
	return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
}

// metric returns the value of the series name in st's Prometheus text.
func metric(t testing.TB, st *stats.Stats, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	st.Set.WritePrometheus(&buf)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return f
	}
	t.Fatalf("no series %s in\n%s", name, buf.String())
	return 0
}

const discardedMetric = "wsrelay_messages_discarded_at_close_total"

func TestEnqueueTakesReferenceFlushReleases(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, s := newConn(t, env, "a")
	b := textBuf(`{"type":"direct"}`)
	queued, must := c.Enqueue(b)
	if !queued || !must {
		t.Fatalf("Enqueue on an idle conn = %v, %v; want queued and owed a flush", queued, must)
	}
	if got := b.Refs(); got != 2 {
		t.Fatalf("Refs after Enqueue = %d, want 2 (test + queue)", got)
	}
	c.Flush(nil)
	if got := b.Refs(); got != 1 {
		t.Fatalf("Refs after Flush = %d, want 1", got)
	}
	if got := s.Bytes(); !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("socket got % x, want % x", got, b.Bytes())
	}
}

func TestEnqueueOwesOneFlush(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, _ := newConn(t, env, "a")
	var musts []bool
	for i := range 3 {
		_, must := c.Enqueue(textBuf(strconv.Itoa(i)))
		musts = append(musts, must)
	}
	if want := []bool{true, false, false}; fmt.Sprint(musts) != fmt.Sprint(want) {
		t.Fatalf("mustFlush of 3 Enqueues = %v, want %v", musts, want)
	}
	c.Flush(nil)
	if _, must := c.Enqueue(textBuf("after")); !must {
		t.Fatal("first Enqueue after a Flush that emptied the queue: want mustFlush")
	}
}

func TestFlushOrderAndCoalescing(t *testing.T) {
	tests := []struct {
		name       string
		frames     int
		body       int
		wantWrites []int // frames per write
	}{
		{"one frame", 1, 20, []int{1}},
		{"three small frames", 3, 20, []int{3}},
		{"64 frames fill one write", 64, 20, []int{64}},
		{"65 frames need two writes", 65, 20, []int{64, 1}},
		{"64 KiB per write", 3, 30 << 10, []int{2, 1}},
		{"a frame larger than a batch goes alone", 2, 70 << 10, []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, 128, 1<<30)
			c, s := newConn(t, env, "a")
			var want []byte
			var bufs []*frame.Buf
			for i := range tt.frames {
				b := paddedBuf(fmt.Sprintf("m%03d", i), tt.body)
				bufs = append(bufs, b)
				want = append(want, b.Bytes()...)
				if queued, _ := c.Enqueue(b); !queued {
					t.Fatalf("frame %d not queued", i)
				}
			}
			c.Flush(nil)
			writes := s.Writes()
			var perWrite []int
			for _, w := range writes {
				perWrite = append(perWrite, len(parseFrames(t, w)))
			}
			if fmt.Sprint(perWrite) != fmt.Sprint(tt.wantWrites) {
				t.Errorf("frames per write = %v, want %v", perWrite, tt.wantWrites)
			}
			if got := bytes.Join(writes, nil); !bytes.Equal(got, want) {
				t.Errorf("written bytes are not the frames in order (%d bytes, want %d)", len(got), len(want))
			}
			for i, b := range bufs {
				if r := b.Refs(); r != 1 {
					t.Errorf("frame %d: Refs = %d after Flush, want 1", i, r)
				}
			}
			if c.HasQueue() {
				t.Error("HasQueue after the queue drained")
			}
		})
	}
}

func TestHasQueue(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, _ := newConn(t, env, "a")
	if c.HasQueue() {
		t.Fatal("a new conn holds queue memory")
	}
	c.Enqueue(textBuf("x"))
	if !c.HasQueue() || c.Queued() != 1 {
		t.Fatalf("after Enqueue: HasQueue %v Queued %d, want true 1", c.HasQueue(), c.Queued())
	}
	c.Flush(nil)
	if c.HasQueue() || c.Queued() != 0 {
		t.Fatalf("after Flush: HasQueue %v Queued %d, want false 0", c.HasQueue(), c.Queued())
	}
}

// TestSlowPeer is a peer that stops reading: flushing stops at HighWater,
// later frames wait in the queue, frames beyond QueueSize are dropped and
// counted, and once the peer reads again it gets the waiting frames followed
// by an overflow notice with the number dropped.
func TestSlowPeer(t *testing.T) {
	const (
		queueSize = 8
		highWater = 1024
		body      = 300 // 304-byte frames: the 4th one crosses HighWater
		inFlight  = 4   // frames written before flushing stops
	)
	tests := []struct {
		name        string
		sent        int
		wantDropped int
	}{
		{"queue fills exactly", inFlight + queueSize, 0},
		{"one dropped", inFlight + queueSize + 1, 1},
		{"many dropped", inFlight + queueSize + 37, 37},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := newEnv(t, queueSize, highWater)
				c, s := newConn(t, env, "slow")
				s.stall()
				var bufs []*frame.Buf
				for i := range tt.sent {
					b := paddedBuf(fmt.Sprintf("m%03d", i), body)
					bufs = append(bufs, b)
					queued, must := c.Enqueue(b)
					if want := i < inFlight+queueSize; queued != want {
						t.Fatalf("frame %d: queued = %v, want %v", i, queued, want)
					}
					if must {
						c.Flush(nil)
					}
				}
				frameLen := len(bufs[0].Bytes())
				if got := len(s.Writes()); got != inFlight {
					t.Fatalf("stalled socket got %d writes, want %d", got, inFlight)
				}
				if got, want := c.InFlight(), int64(inFlight*frameLen); got != want {
					t.Fatalf("InFlight = %d, want %d", got, want)
				}
				if got := c.Queued(); got != queueSize {
					t.Fatalf("Queued = %d, want %d", got, queueSize)
				}
				if got := env.Stats.DroppedBy(stats.DropQueueFull); got != uint64(tt.wantDropped) {
					t.Fatalf("queue_full drops = %d, want %d", got, tt.wantDropped)
				}

				s.drain()
				synctest.Wait() // the Drainer flushed

				writes := s.Writes()
				if len(writes) != inFlight+1 {
					t.Fatalf("after draining: %d writes, want %d (the waiting frames in one)", len(writes), inFlight+1)
				}
				var want []byte
				for _, b := range bufs[:inFlight+queueSize] {
					want = append(want, b.Bytes()...)
				}
				got := bytes.Join(writes, nil)
				if !bytes.HasPrefix(got, want) {
					t.Fatal("peer did not get the queued frames in order")
				}
				tail := parseFrames(t, got[len(want):])
				switch {
				case tt.wantDropped == 0 && len(tail) != 0:
					t.Fatalf("unexpected frames after the queued ones: %q", tail[0].payload)
				case tt.wantDropped > 0:
					wantNotice := fmt.Sprintf(`{"type":"overflow","dropped":%d}`, tt.wantDropped)
					if len(tail) != 1 || tail[0].op != frame.OpText || string(tail[0].payload) != wantNotice {
						t.Fatalf("after the queued frames got %v, want one text frame %s", tail, wantNotice)
					}
				}
				if c.HasQueue() || c.InFlight() != 0 {
					t.Fatalf("after draining: HasQueue %v InFlight %d, want false 0", c.HasQueue(), c.InFlight())
				}
				for i, b := range bufs {
					if r := b.Refs(); r != 1 {
						t.Errorf("frame %d: Refs = %d, want 1", i, r)
					}
				}

				// The notice is sent once: the next frame comes alone.
				next := textBuf("next")
				if _, must := c.Enqueue(next); !must {
					t.Fatal("Enqueue after draining: want mustFlush")
				}
				c.Flush(nil)
				writes = s.Writes()
				if last := writes[len(writes)-1]; !bytes.Equal(last, next.Bytes()) {
					t.Fatalf("next write = %q, want only the next frame", last)
				}
			})
		})
	}
}

func TestCloseWith(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		reason  string
		queued  int
		stalled bool // the close frame does not reach the kernel at once
	}{
		{"normal, idle", frame.CloseNormal, "", 0, false},
		{"policy with queued frames", frame.ClosePolicyViolation, "rate limit", 3, false},
		{"replaced with a full queue", frame.CloseReplaced, "replaced", 8, false},
		{"stalled peer", frame.CloseTooBig, "too big", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := newEnv(t, 8, 0)
				c, s := newConn(t, env, "a")
				if tt.stalled {
					s.stall()
				}
				var bufs []*frame.Buf
				owed := false
				for i := range tt.queued {
					b := textBuf(fmt.Sprintf("m%d", i))
					bufs = append(bufs, b)
					_, must := c.Enqueue(b)
					owed = owed || must
				}
				c.CloseWith(tt.code, tt.reason)
				if owed {
					c.Flush(nil) // the flush owed before the close writes nothing
				}
				c.CloseWith(frame.CloseGoingAway, "again") // ignored

				fs := parseFrames(t, s.Bytes())
				if len(fs) != 1 {
					t.Fatalf("socket got %d frames, want only the close frame", len(fs))
				}
				code, reason := parseClose(t, fs[0])
				if code != tt.code || reason != tt.reason {
					t.Fatalf("close frame %d %q, want %d %q", code, reason, tt.code, tt.reason)
				}
				if got := metric(t, env.Stats, discardedMetric); got != float64(tt.queued) {
					t.Errorf("%s = %v, want %d", discardedMetric, got, tt.queued)
				}
				for i, b := range bufs {
					if r := b.Refs(); r != 1 {
						t.Errorf("frame %d: Refs = %d after CloseWith, want 1", i, r)
					}
				}
				if c.HasQueue() {
					t.Error("HasQueue after CloseWith")
				}
				if q, m := c.Enqueue(textBuf("late")); q || m {
					t.Errorf("Enqueue after CloseWith = %v, %v; want false, false", q, m)
				}
				if tt.stalled {
					if s.Closed() {
						t.Fatal("socket closed before the close frame was written")
					}
					s.drain()
					synctest.Wait()
				}
				if !s.Closed() {
					t.Fatal("socket not closed")
				}
			})
		})
	}
}

func TestCloseWithLingerLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newEnv(t, 8, 0)
		c, s := newConn(t, env, "a")
		s.stall()
		c.CloseWith(frame.CloseNormal, "")
		time.Sleep(closeLinger - time.Millisecond)
		if s.Closed() {
			t.Fatal("socket closed before the linger time")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if !s.Closed() {
			t.Fatalf("a peer that never reads: socket still open %v after CloseWith", closeLinger)
		}
	})
}

func closeBuf(code int) *frame.Buf {
	b := frame.NewBuf(2)
	b.B = append(b.B, byte(code>>8), byte(code))
	b.Finish(frame.OpClose)
	return b
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name    string
		queued  int
		stalled bool // frames wait behind HighWater until the peer reads
	}{
		{"idle", 0, false},
		{"queued frames", 3, false},
		{"full queue", 8, false},
		{"stalled peer", 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := newEnv(t, 8, 64)
				c, s := newConn(t, env, "a")
				if tt.stalled {
					s.stall()
					c.Send(paddedBuf("blocker", 100)) // crosses HighWater
				}
				var want []byte
				var bufs []*frame.Buf
				owed := false
				for i := range tt.queued {
					b := textBuf(fmt.Sprintf("m%d", i))
					bufs = append(bufs, b)
					want = append(want, b.Bytes()...)
					_, must := c.Enqueue(b)
					owed = owed || must
				}
				cf := closeBuf(frame.CloseGoingAway)
				c.Shutdown(cf)
				if q, _ := c.Enqueue(textBuf("late")); q {
					t.Fatal("Enqueue after Shutdown queued a frame")
				}
				if got := env.Stats.DroppedBy(stats.DropQueueFull); got != 0 {
					t.Fatalf("a frame refused after Shutdown counted as a queue_full drop (%d)", got)
				}
				if owed {
					c.Flush(nil)
				}
				if tt.stalled {
					synctest.Wait()
					if s.Closed() {
						t.Fatal("socket closed while frames were waiting")
					}
					s.drain()
				}
				synctest.Wait()

				got := s.Bytes()
				if tt.stalled {
					got = got[len(paddedBuf("blocker", 100).Bytes()):]
				}
				if !bytes.HasPrefix(got, want) {
					t.Fatal("queued frames not delivered in order before the close frame")
				}
				fs := parseFrames(t, got[len(want):])
				if len(fs) != 1 {
					t.Fatalf("%d frames after the queued ones, want the close frame", len(fs))
				}
				if code, _ := parseClose(t, fs[0]); code != frame.CloseGoingAway {
					t.Fatalf("close code %d, want %d", code, frame.CloseGoingAway)
				}
				if !s.Closed() {
					t.Fatal("socket not closed after the close frame")
				}
				for i, b := range append(bufs, cf) {
					if r := b.Refs(); r != 1 {
						t.Errorf("buf %d: Refs = %d, want 1", i, r)
					}
				}
				if got := metric(t, env.Stats, discardedMetric); got != 0 {
					t.Errorf("%s = %v, want 0", discardedMetric, got)
				}
			})
		})
	}
}

func TestTeardown(t *testing.T) {
	tests := []struct {
		name   string
		queued int
	}{
		{"idle", 0},
		{"some queued", 3},
		{"full queue", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, 8, 64)
			c, s := newConn(t, env, "a")
			s.stall()
			c.Send(paddedBuf("blocker", 100))
			var bufs []*frame.Buf
			for i := range tt.queued {
				b := textBuf(fmt.Sprintf("m%d", i))
				bufs = append(bufs, b)
				c.Enqueue(b)
			}
			c.Teardown()
			for i, b := range bufs {
				if r := b.Refs(); r != 1 {
					t.Errorf("frame %d: Refs = %d after Teardown, want 1", i, r)
				}
			}
			if got := metric(t, env.Stats, discardedMetric); got != float64(tt.queued) {
				t.Errorf("%s = %v, want %d", discardedMetric, got, tt.queued)
			}
			if c.HasQueue() {
				t.Error("HasQueue after Teardown")
			}
			if q, m := c.Enqueue(textBuf("late")); q || m {
				t.Errorf("Enqueue after Teardown = %v, %v; want false, false", q, m)
			}
			c.Teardown() // counts nothing twice
			if got := metric(t, env.Stats, discardedMetric); got != float64(tt.queued) {
				t.Errorf("after a second Teardown %s = %v, want %d", discardedMetric, got, tt.queued)
			}
		})
	}
}

func TestWriteControlGoesAhead(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, s := newConn(t, env, "a")
	c.Enqueue(textBuf("queued"))
	ping := frame.AppendFrameHeader(nil, frame.OpPing, 0)
	c.WriteControl(ping)
	c.Flush(nil)
	fs := parseFrames(t, s.Bytes())
	if len(fs) != 2 || fs[0].op != frame.OpPing || string(fs[1].payload) != "queued" {
		t.Fatalf("got %v, want the ping then the queued frame", fs)
	}
	c.Teardown()
	c.WriteControl(ping)
	if n := len(s.Writes()); n != 2 {
		t.Fatalf("WriteControl after Teardown wrote (%d writes, want 2)", n)
	}
}

// blockingSocket holds its first Write until release is closed.
type blockingSocket struct {
	fakeSocket
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingSocket) Write(b []byte) (int, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.release
	}
	return s.fakeSocket.Write(b)
}

// TestCloseDuringFlushComesLast: a close decided while a flush is writing
// frames it already took from the queue is written after them, never before
// (nothing may follow a close frame, RFC 6455 section 5.5.1).
func TestCloseDuringFlushComesLast(t *testing.T) {
	env := newEnv(t, 8, 0)
	s := &blockingSocket{entered: make(chan struct{}), release: make(chan struct{})}
	c := New(env, "a", "192.0.2.1", s)
	s.c = c
	b := textBuf("data")
	defer b.Release()
	if _, flush := c.Enqueue(b); !flush {
		t.Fatal("first Enqueue owes no flush")
	}
	done := make(chan struct{})
	go func() {
		c.Flush(nil)
		close(done)
	}()
	<-s.entered // the flush is inside Write with the data frame
	c.CloseWith(4001, "replaced")
	close(s.release)
	<-done
	w := s.Writes()
	if len(w) != 2 || w[0][0] != 0x80|frame.OpText || w[1][0] != 0x80|frame.OpClose {
		t.Fatalf("writes = %x, want the data frame then the close frame", w)
	}
	if code := int(w[1][2])<<8 | int(w[1][3]); code != 4001 {
		t.Fatalf("close code %d", code)
	}
	if !s.Closed() {
		t.Fatal("socket not closed")
	}
}

// TestSendPathConcurrent races producers, a peer that reads in bursts and
// a close against each other (run it with -race). Whatever the interleaving,
// each producer's frames arrive whole and in order, the close frame comes
// last and only once, every frame queued is either written or counted as
// discarded at close, no reference leaks and the socket ends closed.
func TestSendPathConcurrent(t *testing.T) {
	const (
		producers   = 4
		perProducer = 150
	)
	closers := []struct {
		name  string
		code  int
		close func(c *Conn)
	}{
		{"CloseWith", frame.CloseReplaced, func(c *Conn) { c.CloseWith(frame.CloseReplaced, "replaced") }},
		{"Shutdown", frame.CloseGoingAway, func(c *Conn) { c.Shutdown(closeBuf(frame.CloseGoingAway)) }},
	}
	for _, cl := range closers {
		for round := range 8 {
			t.Run(fmt.Sprint(cl.name, " after ", round*50, " yields"), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					env := newEnv(t, 16, 1024)
					c, s := newConn(t, env, "a")
					var queued [producers]int
					bufs := make([][]*frame.Buf, producers)
					var wg sync.WaitGroup
					for p := range producers {
						wg.Go(func() {
							for i := range perProducer {
								b := paddedBuf(fmt.Sprintf("p%d-%03d", p, i), 100)
								bufs[p] = append(bufs[p], b)
								q, must := c.Enqueue(b)
								if q {
									queued[p]++
								}
								if must {
									c.Flush(nil)
								}
							}
						})
					}
					wg.Go(func() { // the peer reads in bursts
						for range 40 {
							s.stall()
							runtime.Gosched()
							s.drain()
						}
					})
					wg.Go(func() {
						for range round * 50 {
							runtime.Gosched()
						}
						cl.close(c)
					})
					wg.Wait()
					s.drain()
					synctest.Wait()

					fs := parseFrames(t, s.Bytes())
					if len(fs) == 0 {
						t.Fatal("nothing written")
					}
					if code, _ := parseClose(t, fs[len(fs)-1]); code != cl.code {
						t.Fatalf("last frame closes with %d, want %d", code, cl.code)
					}
					next := [producers]int{}
					written := 0
					for i, f := range fs[:len(fs)-1] {
						if f.op == frame.OpClose {
							t.Fatalf("frame %d of %d is a close frame", i, len(fs))
						}
						if strings.HasPrefix(string(f.payload), `{"type":"overflow"`) {
							continue
						}
						var p, n int
						if _, err := fmt.Sscanf(string(f.payload), "p%d-%03d", &p, &n); err != nil {
							t.Fatalf("frame %d: %q: %v", i, f.payload, err)
						}
						if n < next[p] {
							t.Fatalf("producer %d: frame %d after frame %d", p, n, next[p]-1)
						}
						next[p] = n + 1
						written++
					}
					total := 0
					for _, n := range queued {
						total += n
					}
					discarded := int(metric(t, env.Stats, discardedMetric))
					if written+discarded != total {
						t.Fatalf("written %d + discarded %d, want the %d queued", written, discarded, total)
					}
					if cl.name == "Shutdown" && discarded != 0 {
						t.Fatalf("Shutdown discarded %d frames, want all written", discarded)
					}
					for p := range bufs {
						for i, b := range bufs[p] {
							if r := b.Refs(); r != 1 {
								t.Fatalf("producer %d frame %d: Refs = %d, want 1", p, i, r)
							}
						}
					}
					if c.HasQueue() {
						t.Fatal("HasQueue after the close")
					}
					if !s.Closed() {
						t.Fatal("socket not closed")
					}
				})
			})
		}
	}
}
