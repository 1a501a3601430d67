package frame

import (
	"slices"
	"testing"
)

// stopper records like recorder and stops its Reader after every n-th
// callback, as a transport does when flow control pauses a sender.
type stopper struct {
	recorder
	r     *Reader
	every int
	calls int
}

func (s *stopper) tick() {
	s.calls++
	if s.every > 0 && s.calls%s.every == 0 {
		s.r.Stop()
	}
}

func (s *stopper) OnMessage(op byte, p []byte) { s.recorder.OnMessage(op, p); s.tick() }
func (s *stopper) OnPing(p []byte)             { s.recorder.OnPing(p); s.tick() }
func (s *stopper) OnPong(p []byte)             { s.recorder.OnPong(p); s.tick() }

// feedStopping feeds in two chunks cut at cut to a Reader that stops after
// every every-th callback; the second chunk arrives while it may be stopped
// (as over TLS, where decrypted input keeps coming), and Resume is then
// called until the Reader runs to the end of its input.
func feedStopping(t testing.TB, maxMsg int, in []byte, cut, every int) ([]event, error, *Reader) {
	t.Helper()
	data := append([]byte(nil), in...)
	r := &Reader{MaxMessage: maxMsg}
	h := &stopper{r: r, every: every}
	err := r.Feed(data[:cut], h)
	if err == nil && !h.closed {
		err = r.Feed(data[cut:], h)
	}
	for err == nil && !h.closed && r.Stopped() {
		held := r.Held()
		err = r.Resume(h)
		if r.Stopped() && r.Held() >= held && held > 0 {
			t.Fatalf("Resume decoded nothing of %d held bytes", held)
		}
	}
	if err == nil && !h.closed && r.Held() != 0 {
		t.Fatalf("running Reader holds %d bytes", r.Held())
	}
	return h.events, err, r
}

func TestReaderStop(t *testing.T) {
	in := cat(text("a"), ping("p"), bin("b"), fragments(OpText, "c", "d"), text("e"), closeFrame(1000, "bye"), text("ignored"))
	want := []event{textEv("a"), pingEv("p"), binEv("b"), textEv("cd"), textEv("e"), closeEv(1000, "bye")}
	for _, every := range []int{1, 2, 3} {
		for _, cut := range []int{0, 5, 12, len(in)} {
			events, err, r := feedStopping(t, 100, in, cut, every)
			if err != nil || !slices.Equal(events, want) {
				t.Fatalf("stop every %d, cut %d: events %v, err %v; want %v", every, cut, events, err, want)
			}
			if r.Held() != 0 || r.msg != nil {
				t.Fatalf("stop every %d, cut %d: %d bytes held after the close", every, cut, r.Held())
			}
		}
	}

	// While stopped, nothing is decoded: input waits for Resume.
	r := &Reader{MaxMessage: 100}
	h := &stopper{r: r, every: 1}
	if err := r.Feed(cat(text("1"), text("2")), h); err != nil {
		t.Fatal(err)
	}
	if err := r.Feed(text("3"), h); err != nil {
		t.Fatal(err)
	}
	if len(h.events) != 1 || !r.Stopped() || r.Held() != 2*len(text("x")) {
		t.Fatalf("stopped Reader: %v, stopped %v, held %d", h.events, r.Stopped(), r.Held())
	}
	// A protocol error in held input is reported by Resume, after what
	// preceded it.
	if err := r.Feed(unmasked(OpText, "bad"), h); err != nil {
		t.Fatal(err)
	}
	h.every = 0
	if err := r.Resume(h); err != ErrUnmaskedClientFrame || len(h.events) != 3 {
		t.Fatalf("Resume = %v after %v, want %v after 3 messages", err, h.events, ErrUnmaskedClientFrame)
	}
	if r.Held() != 0 {
		t.Fatal("failed Reader still holds input")
	}
}
