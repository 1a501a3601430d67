package conn

import (
	"testing"
	"testing/synctest"
	"time"
)

// newLimitedConn returns a conn limited to msgs per second with burst, made
// a while after its Env as on a running server.
func newLimitedConn(t *testing.T, msgs, burst int) *Conn {
	t.Helper()
	env := newEnv(t, 8, 0)
	env.RateMsgs, env.RateBurst = msgs, burst
	time.Sleep(time.Minute)
	c, _ := newConn(t, env, "a")
	return c
}

func TestChargeOff(t *testing.T) {
	env := newEnv(t, 8, 0)
	c, _ := newConn(t, env, "a")
	for i := range 10000 {
		if ok, _, _ := c.Charge(); !ok {
			t.Fatalf("message %d refused with rate limiting off", i)
		}
	}
}

// TestChargeBurst: a new connection may send its whole burst at once.
func TestChargeBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newLimitedConn(t, 10, 10)
		for i := range 10 {
			if ok, _, _ := c.Charge(); !ok {
				t.Fatalf("message %d of the burst of 10 refused", i+1)
			}
		}
		ok, notify, abuse := c.Charge()
		if ok || !notify || abuse {
			t.Fatalf("11th message: ok %v notify %v abuse %v; want refused, notified, no abuse", ok, notify, abuse)
		}
		ok, notify, _ = c.Charge()
		if ok || notify {
			t.Fatalf("12th message: ok %v notify %v; want refused without a second notice", ok, notify)
		}
	})
}

// TestChargeNotifyOncePerSecond sends 40 messages a second against a limit
// of 10 and counts the rate_limited notices.
func TestChargeNotifyOncePerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newLimitedConn(t, 10, 10)
		notices := map[int]int{} // second -> notices
		refused := 0
		start := time.Now()
		for range 5 * 40 {
			ok, notify, _ := c.Charge()
			if !ok {
				refused++
			}
			if notify {
				notices[int(time.Since(start)/time.Second)]++
			}
			time.Sleep(time.Second / 40)
		}
		for s := range 5 {
			if notices[s] != 1 {
				t.Errorf("second %d: %d notices, want 1 (all: %v)", s, notices[s], notices)
			}
		}
		// 200 messages in 5 s at 10/s with a burst of 10: about 140 refused.
		if refused < 130 || refused > 150 {
			t.Errorf("%d of 200 messages refused, want about 140", refused)
		}
	})
}

func TestChargeAbuse(t *testing.T) {
	tests := []struct {
		name      string
		phases    []time.Duration // alternating: time over the limit, time silent
		wantAbuse bool
	}{
		{"10 s over the limit", []time.Duration{10*time.Second + 200*time.Millisecond}, true},
		{"9 s over the limit", []time.Duration{9 * time.Second}, false},
		{"two 6 s streaks split by a 2 s pause", []time.Duration{6 * time.Second, 2 * time.Second, 6 * time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newLimitedConn(t, 10, 10)
				// Use up the burst: the excess starts now.
				for range 10 {
					c.Charge()
				}
				start := time.Now()
				var abusedAt time.Duration
				for i, d := range tt.phases {
					if i%2 == 1 {
						time.Sleep(d)
						continue
					}
					// 20 messages a second: every other one is refused.
					for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
						if _, _, abuse := c.Charge(); abuse && abusedAt == 0 {
							abusedAt = time.Since(start)
						}
					}
				}
				switch {
				case !tt.wantAbuse && abusedAt != 0:
					t.Fatalf("abuse reported after %v", abusedAt)
				case tt.wantAbuse && abusedAt == 0:
					t.Fatal("abuse not reported")
				case tt.wantAbuse && (abusedAt < 10*time.Second || abusedAt > 10*time.Second+150*time.Millisecond):
					t.Fatalf("abuse reported after %v of excess, want just after 10s", abusedAt)
				}
			})
		})
	}
}

// TestLimiterOnFirstMessage: a peer that never sends holds no limiter (it
// is the largest part of an idle connection's state after nbio's), and the
// first messages still get the whole burst.
func TestLimiterOnFirstMessage(t *testing.T) {
	env := newEnv(t, 4, 0)
	env.RateMsgs, env.RateBurst = 1, 2
	c, _ := newConn(t, env, "a")
	if c.limiter != nil {
		t.Fatal("a new connection holds a rate limiter before its first message")
	}
	for i := range 2 {
		if ok, _, _ := c.Charge(); !ok {
			t.Fatalf("message %d of a burst of 2 refused", i+1)
		}
	}
	if ok, _, _ := c.Charge(); ok {
		t.Fatal("third message at once passed a burst of 2")
	}
}
