package main

import (
	"math/bits"
	"sort"
	"time"
)

// histogram is a log-linear latency histogram in the manner of HDR
// histograms: values (nanoseconds) below 2^subBits are counted exactly, larger
// ones in buckets of relative width 2^-subBits (about 1.6 %), so memory is
// fixed whatever the number of samples, and histograms of several processes
// merge by adding counts.
type histogram struct {
	counts []uint64
	n      uint64
	max    int64
}

const subBits = 6 // 64 sub-buckets per power of two

func newHistogram() *histogram { return &histogram{counts: make([]uint64, (64-subBits+1)<<subBits)} }

func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - subBits // >= 1
	return e<<subBits + int(uint64(v)>>(e-1)) - 1<<subBits
}

// bucketValue returns the highest value that falls in bucket i.
func bucketValue(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	e := i >> subBits
	m := int64(i&(1<<subBits-1)) + 1<<subBits
	return (m+1)<<(e-1) - 1
}

func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.max = max(h.max, v)
}

func (h *histogram) reset() {
	clear(h.counts)
	h.n, h.max = 0, 0
}

// sparse returns the non-empty buckets as index/count pairs, for sending to
// the parent process.
func (h *histogram) sparse() [][2]uint64 {
	var out [][2]uint64
	for i, c := range h.counts {
		if c > 0 {
			out = append(out, [2]uint64{uint64(i), c})
		}
	}
	return out
}

func (h *histogram) merge(sp [][2]uint64, maxV int64) {
	for _, p := range sp {
		h.counts[p[0]] += p[1]
		h.n += p[1]
	}
	h.max = max(h.max, maxV)
}

// quantile returns the value at quantile q (0..1), as the upper bound of its
// bucket, never above the largest value recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// points returns the distribution for charting: for each non-empty bucket,
// its upper bound in microseconds and the share of samples at or below it.
func (h *histogram) points() (us []float64, cdf []float64) {
	var seen uint64
	idx := make([]int, 0, 256)
	for i, c := range h.counts {
		if c > 0 {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		seen += h.counts[i]
		us = append(us, float64(min(bucketValue(i), h.max))/1e3)
		cdf = append(cdf, float64(seen)/float64(h.n))
	}
	return us, cdf
}
