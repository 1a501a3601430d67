package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// benchAPIKey turns the server API on in the api scenario.
const benchAPIKey = "bench-api-key-bench-api-key-bench-api-key"

// apiEnv is floodEnv with the server API on (on the public address: no
// admin address, so the harness needs no second port).
func apiEnv(o *options) []string {
	return append(floodEnv(o), "WSRELAY_API_KEY="+benchAPIKey)
}

// apiPublisher sends POST /api/publish calls, one after the other on one
// keep-alive connection, as a backend would.
type apiPublisher struct {
	url    string
	client *http.Client
	room   string
	size   int
	buf    []byte

	mu       sync.Mutex
	err      error
	calls    int
	finished time.Time
}

func (p *apiPublisher) publish(now time.Time) error {
	p.buf = append(p.buf[:0], `{"room":"`...)
	p.buf = append(p.buf, p.room...)
	p.buf = append(p.buf, `","data":`...)
	p.buf = appendTimed(p.buf, now.UnixNano(), p.size, false)
	p.buf = append(p.buf, '}')
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(p.buf))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchAPIKey)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /api/publish: %s", resp.Status)
	}
	return nil
}

// run sends messages calls, as fast as the answers come (rate 0) or paced.
func (p *apiPublisher) run(messages int, rate float64) {
	var err error
	calls := 0
	send := func(time.Time) {
		if err == nil {
			if err = p.publish(time.Now()); err == nil {
				calls++
			}
		}
	}
	if rate == 0 {
		for range messages {
			if send(time.Time{}); err != nil {
				break
			}
		}
	} else {
		paced(rate, time.Duration(float64(messages)/rate*float64(time.Second)), send)
	}
	p.mu.Lock()
	p.err, p.calls, p.finished = err, calls, time.Now()
	p.mu.Unlock()
}

// runAPI is fanout with the server API as the publisher: a backend POSTs
// the messages, every member receives them from "@server". It reports the
// API calls answered per second besides fanout's figures, so the two
// scenarios compare a peer's publish with the API's.
func runAPI(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	members, size, rate := fanoutParams(o)
	const room = "api"
	_, joinTime, err := r.fillRoom(ctx, room, members, "")
	if err != nil {
		return err
	}
	pub := &apiPublisher{
		url:    "http://" + r.t.host + "/api/publish",
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
		room:   room,
		size:   size,
	}
	want := int64(members) * int64(o.messages)
	c0, _ := r.t.read()
	r.measure(true)
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); pub.run(o.messages, rate) }()
	h := newHistogram()
	limit := 60*time.Second + time.Duration(float64(o.messages)/max(rate, 1)*float64(time.Second))
	if err := r.awaitDeliveries(ctx, want, start, limit); err != nil {
		return err
	}
	c1, _ := r.t.read()
	r.measure(false)
	<-done
	got, err := r.report(h)
	if err != nil {
		return err
	}
	pub.mu.Lock()
	callErr, calls, sent := pub.err, pub.calls, pub.finished.Sub(start)
	pub.mu.Unlock()
	if callErr != nil {
		return fmt.Errorf("api publisher: %w", callErr)
	}
	elapsed := time.Duration(got.LastRcv - start.UnixNano())
	deliveries := got.Recv
	cpu := c1.CPU - c0.CPU
	res.Hist = h
	res.set("members", members)
	res.set("messages", o.messages)
	res.set("payload_bytes", size)
	res.set("rate", rate)
	res.set("join_s", round(joinTime.Seconds(), 2))
	res.set("api_calls", calls)
	res.set("api_calls_per_s", round(float64(calls)/sent.Seconds(), 0))
	res.set("deliveries", deliveries)
	res.set("lost", want-deliveries)
	res.set("dropped_reported", got.Dropped)
	res.set("complete_s", round(elapsed.Seconds(), 3))
	res.set("deliveries_per_s", round(float64(deliveries)/elapsed.Seconds(), 0))
	res.set("server_cpu_s", round(cpu, 2))
	res.set("cpu_s_per_million", round(cpu/float64(max(deliveries, 1))*1e6, 2))
	if c1.Writes > 0 {
		res.set("writes_per_delivery", round(float64(c1.Writes-c0.Writes)/float64(max(deliveries, 1)), 3))
	}
	res.setLatency("", h, "p50", "p99")
	res.set("peak_rss_mib", round(mib(r.t.peakRSS()), 1))
	res.Summary = fmt.Sprintf("%d members × %d API publishes (%d B): %.0f calls/s answered, all delivered in %.3fs, %.0f deliveries/s, %.2f CPU-s/M deliveries, p50 %.2fms p99 %.2fms, lost %d",
		members, o.messages, size, float64(calls)/sent.Seconds(), elapsed.Seconds(), float64(deliveries)/elapsed.Seconds(),
		cpu/float64(max(deliveries, 1))*1e6, ms(h.quantile(0.5)), ms(h.quantile(0.99)), want-deliveries)
	return nil
}
