package main

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 123456, 1 << 40, 1<<62 + 12345} {
		i := bucketOf(v)
		if hi := bucketValue(i); hi < v {
			t.Fatalf("value %d in bucket %d whose upper bound is %d", v, i, hi)
		}
		if i > 0 && bucketValue(i-1) >= v {
			t.Fatalf("value %d belongs below bucket %d", v, i)
		}
		if hi := bucketValue(i); v >= 64 && float64(hi-v) > float64(v)/32 {
			t.Fatalf("bucket of %d too wide: upper bound %d", v, hi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 10000; i++ {
		h.record(int64(i) * int64(time.Microsecond))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)*0.02 {
			t.Errorf("q%.3f = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	m := newHistogram()
	m.merge(h.sparse(), h.max)
	m.merge(h.sparse(), h.max)
	if m.n != 2*h.n || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge: n=%d p50=%v, want n=%d p50=%v", m.n, m.quantile(0.5), 2*h.n, h.quantile(0.5))
	}
}

// The percentile fields of a result carry the histogram's quantiles under
// the names the JSON and HTML output use.
func TestSetLatency(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 10000; i++ {
		h.record(int64(i) * int64(time.Microsecond))
	}
	res := &result{Fields: map[string]any{}}
	res.setLatency("resume_", h, "p50", "p99", "p999")
	for name, q := range map[string]float64{"resume_p50_ms": 0.5, "resume_p99_ms": 0.99, "resume_p999_ms": 0.999} {
		if got, want := res.Fields[name], ms(h.quantile(q)); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if len(res.Fields) != 3 {
		t.Errorf("fields %v, want the three percentiles only", res.Fields)
	}
}
