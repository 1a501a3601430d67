package conn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

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
