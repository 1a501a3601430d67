package conn

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/wsrelay/wsrelay/frame"
)

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
