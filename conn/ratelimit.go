package conn

import (
	"time"

	"golang.org/x/time/rate"
)

// Rate-limit policy (docs/protocol.md section 5).
const (
	rateNoticeEvery = time.Second      // at most one rate_limited error per second
	rateAbuseAfter  = 10 * time.Second // sustained excess for this long closes with 1008
	rateStreakGap   = time.Second      // a second without excess ends a streak
)

// Charge charges one message to the rate limiter. It reports whether the
// message may pass; for a refused one, whether to tell the sender
// (rate_limited, at most once a second) and whether the sender has kept
// exceeding its limit for 10 seconds and must be closed with 1008.
// Only the reading goroutine calls Charge.
func (c *Conn) Charge() (ok, notify, abuse bool) {
	if c.limiter == nil {
		if c.env.RateMsgs <= 0 {
			return true, false, false
		}
		// A limiter starts with a full burst whenever it is made, so
		// making it on the first message changes nothing for the peer,
		// and a peer that never sends costs nothing.
		c.limiter = rate.NewLimiter(rate.Limit(c.env.RateMsgs), c.env.RateBurst)
	}
	now := c.env.Mono()
	if c.limiter.AllowN(c.env.epoch.Add(now), 1) {
		return true, false, false
	}
	if !c.excessSeen || now-c.lastExcess > rateStreakGap {
		c.excessStart = now
	}
	c.excessSeen = true
	c.lastExcess = now
	if !c.noticeSent || now-c.lastNotice >= rateNoticeEvery {
		c.noticeSent = true
		c.lastNotice = now
		notify = true
	}
	return false, notify, now-c.excessStart >= rateAbuseAfter
}
