package conn

import (
	"fmt"
	"testing"

	"github.com/wsrelay/wsrelay/frame"
)

// TestRingFIFO checks the ring against a slice model over push/pop
// sequences that wrap around its end.
func TestRingFIFO(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		ops      []int // > 0: push that many; < 0: pop that many
	}{
		{"fill and empty", 4, []int{4, -4}},
		{"interleaved", 4, []int{1, -1, 2, -1, 1, -2}},
		{"wrap once", 3, []int{3, -2, 2, -3}},
		{"wrap many times", 5, []int{4, -3, 4, -4, 3, -3, 4, -2, 2, -5}},
		{"capacity one", 1, []int{1, -1, 1, -1, 1, -1}},
		{"pop from empty", 2, []int{-1, 2, -3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRing(tt.capacity)
			var model []*frame.Buf
			next := 0
			for _, op := range tt.ops {
				for ; op > 0; op-- {
					b := textBuf(fmt.Sprint(next))
					next++
					r.push(b)
					model = append(model, b)
				}
				for ; op < 0; op++ {
					var want *frame.Buf
					if len(model) > 0 {
						want, model = model[0], model[1:]
					}
					if p := r.peek(); p != want {
						t.Fatalf("peek = %v, want %v", body(p), body(want))
					}
					if got := r.pop(); got != want {
						t.Fatalf("pop = %v, want %v", body(got), body(want))
					}
				}
				if r.len() != len(model) {
					t.Fatalf("len = %d, want %d", r.len(), len(model))
				}
			}
		})
	}
}

func body(b *frame.Buf) string {
	if b == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", b.Body())
}

func TestRingPeekNil(t *testing.T) {
	var r *ring
	if r.peek() != nil {
		t.Fatal("peek on a nil ring (a conn without queue memory) is not nil")
	}
}

// TestRingClose releases each queued frame once, after wrapping, and
// leaves an empty, unsealed ring that works again.
func TestRingClose(t *testing.T) {
	r := newRing(3)
	a, b, c, d := textBuf("a"), textBuf("b"), textBuf("c"), textBuf("d")
	for _, x := range []*frame.Buf{a, b, c, d} {
		x.Retain(1) // the ring's reference
	}
	r.push(a)
	r.push(d)
	r.pop().Release()
	r.pop().Release()
	r.push(b)
	r.seal(c) // wraps
	if !r.isSealed() {
		t.Fatal("ring not sealed after seal")
	}
	if n := r.close(); n != 2 {
		t.Fatalf("close = %d, want 2", n)
	}
	for _, x := range []*frame.Buf{a, b, c, d} {
		if x.Refs() != 1 {
			t.Fatalf("%s: Refs = %d, want 1", x.Body(), x.Refs())
		}
	}
	if r.len() != 0 || r.peek() != nil || r.isSealed() {
		t.Fatalf("after close: len %d, sealed %v", r.len(), r.isSealed())
	}
	r.push(a)
	if r.pop() != a {
		t.Fatal("ring unusable after close")
	}
}
