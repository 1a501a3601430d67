// Package stats holds wsrelay's counters: the closed label sets of every
// drop, rejection and eviction, registered once in the *metrics.Set that
// main makes and serves on /metrics. It is the single source of /stats.
// (The protocol's error counters are registered by package session, which
// owns the error vocabulary.)
//
// Every counter is an atomic add; nothing here allocates after New, so the
// hot paths may count freely. Label sets are fixed at construction: no
// per-peer or per-room series exist.
package stats

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// DropReason says why a message meant for a peer was discarded. The values
// are the label values of wsrelay_messages_dropped_total.
type DropReason int

// Drop reasons.
const (
	DropQueueFull   DropReason = iota // the recipient's send queue was full
	DropRateLimited                   // the sender exceeded its rate limit
	DropNoRoute                       // no recipient could be found
	// DropClusterSendFailed is a frame meant for peers on other nodes that
	// NATS did not take (disconnected, its buffer full, over its payload
	// limit): one per frame, whatever the number of remote recipients.
	DropClusterSendFailed
	// DropClusterSlowConsumer is a message from another node that the NATS
	// client dropped because this node did not take it in time.
	DropClusterSlowConsumer
	// DropClusterMalformed is a message from another node that could not be
	// decoded.
	DropClusterMalformed
	numDropReasons
)

var dropNames = [numDropReasons]string{"queue_full", "rate_limited", "no_route",
	"cluster_send_failed", "cluster_slow_consumer", "cluster_malformed"}

func (r DropReason) String() string { return dropNames[r] }

// RejectReason says why an upgrade was refused (label of
// wsrelay_connections_rejected_total).
type RejectReason int

// Reject reasons.
const (
	RejectFull RejectReason = iota
	RejectOrigin
	RejectAuth
	RejectPerIP
	RejectDraining
	RejectBadRequest
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{"full", "origin", "auth", "per_ip", "draining", "bad_request"}

func (r RejectReason) String() string { return rejectNames[r] }

// EvictReason says why the server closed a connection (label of
// wsrelay_evictions_total).
type EvictReason int

// Evict reasons.
const (
	EvictTimeout  EvictReason = iota // silent for CLIENT_TIMEOUT
	EvictReplaced                    // a newer connection took its peer id (4001)
	EvictPolicy                      // sustained rate-limit abuse (1008)
	EvictTooLarge                    // a message over MAX_MESSAGE_BYTES (1009)
	numEvictReasons
)

var evictNames = [numEvictReasons]string{"timeout", "replaced", "policy", "too_large"}

func (r EvictReason) String() string { return evictNames[r] }

// Kind classifies a received message (label of
// wsrelay_messages_received_total).
type Kind int

// Message kinds.
const (
	KindDirect    Kind = iota // JSON direct
	KindPublish               // JSON publish
	KindBroadcast             // JSON broadcast
	KindControl               // join, leave, ping and anything else that is not routed
	KindBinary                // any binary frame
	numKinds
)

var kindNames = [numKinds]string{"direct", "publish", "broadcast", "control", "binary"}

func (k Kind) String() string { return kindNames[k] }

// FanoutBuckets are the upper bounds of wsrelay_fanout_size.
var fanoutBuckets = []float64{0, 1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000}

// Stats is the set of counters of one server. Safe for concurrent use.
type Stats struct {
	// Set is the set given to New.
	Set *vm.Set

	start time.Time

	conns atomic.Int64
	rooms atomic.Int64

	accepted     *vm.Counter
	rejected     [numRejectReasons]*vm.Counter
	received     [numKinds]*vm.Counter
	delivered    *vm.Counter
	dropped      [numDropReasons]*vm.Counter
	discarded    *vm.Counter
	httpTimeouts *vm.Counter
	bytesIn      *vm.Counter
	bytesOut     *vm.Counter
	saved        *vm.Counter
	evicted      [numEvictReasons]*vm.Counter
	fanout       *vm.PrometheusHistogram

	// Flow control (docs/protocol.md section 9).
	flowPauses     *vm.Counter
	flowPaused     atomic.Int64
	flowPausedSecs *vm.FloatCounter

	// MaxClients is reported on /stats.
	MaxClients int
}

// New registers every series in set, which the caller owns and serves.
func New(set *vm.Set, maxClients int) *Stats {
	s := &Stats{Set: set, start: time.Now(), MaxClients: maxClients}
	s.Set.NewGauge("wsrelay_connections", func() float64 { return float64(s.conns.Load()) })
	s.Set.NewGauge("wsrelay_rooms", func() float64 { return float64(s.rooms.Load()) })
	s.accepted = s.Set.NewCounter("wsrelay_connections_accepted_total")
	for i := range s.rejected {
		s.rejected[i] = s.Set.NewCounter(fmt.Sprintf(`wsrelay_connections_rejected_total{reason=%q}`, rejectNames[i]))
	}
	for i := range s.received {
		s.received[i] = s.Set.NewCounter(fmt.Sprintf(`wsrelay_messages_received_total{kind=%q}`, kindNames[i]))
	}
	s.delivered = s.Set.NewCounter("wsrelay_messages_delivered_total")
	for i := range s.dropped {
		s.dropped[i] = s.Set.NewCounter(fmt.Sprintf(`wsrelay_messages_dropped_total{reason=%q}`, dropNames[i]))
	}
	s.discarded = s.Set.NewCounter("wsrelay_messages_discarded_at_close_total")
	s.httpTimeouts = s.Set.NewCounter("wsrelay_http_timeouts_total")
	s.bytesIn = s.Set.NewCounter("wsrelay_bytes_received_total")
	s.bytesOut = s.Set.NewCounter("wsrelay_bytes_sent_total")
	s.saved = s.Set.NewCounter("wsrelay_compression_saved_bytes_total")
	for i := range s.evicted {
		s.evicted[i] = s.Set.NewCounter(fmt.Sprintf(`wsrelay_evictions_total{reason=%q}`, evictNames[i]))
	}
	s.fanout = s.Set.NewPrometheusHistogramExt("wsrelay_fanout_size", fanoutBuckets)
	s.flowPauses = s.Set.NewCounter("wsrelay_flow_pauses_total")
	s.Set.NewGauge("wsrelay_flow_paused_connections", func() float64 { return float64(s.flowPaused.Load()) })
	s.flowPausedSecs = s.Set.NewFloatCounter("wsrelay_flow_paused_seconds_total")
	return s
}

// ConnOpened and ConnClosed track the open-connections gauge.
func (s *Stats) ConnOpened()        { s.conns.Add(1); s.accepted.Inc() }
func (s *Stats) ConnClosed()        { s.conns.Add(-1) }
func (s *Stats) Connections() int64 { return s.conns.Load() }

// RoomsChanged adds d to the rooms gauge.
func (s *Stats) RoomsChanged(d int64) { s.rooms.Add(d) }

// Reject counts a refused upgrade.
func (s *Stats) Reject(r RejectReason) { s.rejected[r].Inc() }

// Received counts one message read from a client of n bytes.
func (s *Stats) Received(k Kind) { s.received[k].Inc() }

// BytesIn counts bytes read from clients (WebSocket payloads and headers).
func (s *Stats) BytesIn(n int) { s.bytesIn.Add(n) }

// BytesOut counts bytes handed to sockets.
func (s *Stats) BytesOut(n int) { s.bytesOut.Add(n) }

// CompressionSaved counts n bytes that one delivery did not put on the
// wire because it went compressed (permessage-deflate): the plain frame's
// length minus the compressed frame's.
func (s *Stats) CompressionSaved(n int) { s.saved.Add(n) }

// Delivered counts n messages handed to recipients' queues.
func (s *Stats) Delivered(n int) { s.delivered.Add(n) }

// Drop is the one place a dropped message is counted.
func (s *Stats) Drop(r DropReason, n int) { s.dropped[r].Add(n) }

// DiscardedAtClose counts frames still queued when their connection closed.
func (s *Stats) DiscardedAtClose(n int) { s.discarded.Add(n) }

// HTTPTimeout counts a socket closed because it did not complete an HTTP
// request (an upgrade, or the next request on a keep-alive connection)
// within the handshake timeout.
func (s *Stats) HTTPTimeout() { s.httpTimeouts.Inc() }

// HTTPTimeouts returns the HTTPTimeout counter.
func (s *Stats) HTTPTimeouts() uint64 { return s.httpTimeouts.Get() }

// Evict counts a connection closed by the server for reason r.
func (s *Stats) Evict(r EvictReason) { s.evicted[r].Inc() }

// Fanout records the number of recipients of one routed message.
func (s *Stats) Fanout(n int) { s.fanout.Update(float64(n)) }

// FlowPaused counts a connection whose reading flow control paused.
func (s *Stats) FlowPaused() { s.flowPauses.Inc(); s.flowPaused.Add(1) }

// FlowResumed counts the end of a pause that lasted d: the connection is
// read again, or it closed while paused.
func (s *Stats) FlowResumed(d time.Duration) {
	s.flowPaused.Add(-1)
	s.flowPausedSecs.Add(d.Seconds())
}

// FlowPauses returns wsrelay_flow_pauses_total.
func (s *Stats) FlowPauses() uint64 { return s.flowPauses.Get() }

// FlowPausedNow returns wsrelay_flow_paused_connections.
func (s *Stats) FlowPausedNow() int64 { return s.flowPaused.Load() }

// Snapshot is the body of GET /stats.
type Snapshot struct {
	UptimeSeconds float64 `json:"uptime_seconds"`
	Uptime        string  `json:"uptime"`
	Connections   int64   `json:"connections"`
	Rooms         int64   `json:"rooms"`
	MessagesIn    uint64  `json:"messages_in"`
	MessagesOut   uint64  `json:"messages_out"`
	BytesIn       uint64  `json:"bytes_in"`
	BytesOut      uint64  `json:"bytes_out"`
	Dropped       uint64  `json:"dropped"`
	// DroppedBy splits Dropped by reason: a message that reached no one
	// (no_route, such as a publish to a room with no other member) is not
	// the loss that queue_full and rate_limited are.
	DroppedBy  DropCounts `json:"dropped_by_reason"`
	Rejected   uint64     `json:"rejected"`
	Evicted    uint64     `json:"evicted"`
	Goroutines int        `json:"goroutines"`
	HeapBytes  uint64     `json:"heap_bytes"`
	MaxClients int        `json:"max_clients"`
}

// DropCounts is wsrelay_messages_dropped_total per reason, on /stats.
type DropCounts struct {
	QueueFull           uint64 `json:"queue_full"`
	RateLimited         uint64 `json:"rate_limited"`
	NoRoute             uint64 `json:"no_route"`
	ClusterSendFailed   uint64 `json:"cluster_send_failed"`
	ClusterSlowConsumer uint64 `json:"cluster_slow_consumer"`
	ClusterMalformed    uint64 `json:"cluster_malformed"`
}

func sum(cs []*vm.Counter) uint64 {
	var n uint64
	for _, c := range cs {
		n += c.Get()
	}
	return n
}

// Snapshot reads every counter. It does not stop the world.
func (s *Stats) Snapshot() Snapshot {
	up := time.Since(s.start)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	var heap uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		heap = sample[0].Value.Uint64()
	}
	return Snapshot{
		UptimeSeconds: up.Seconds(),
		Uptime:        up.Round(100 * time.Millisecond).String(),
		Connections:   s.conns.Load(),
		Rooms:         s.rooms.Load(),
		MessagesIn:    sum(s.received[:]),
		MessagesOut:   s.delivered.Get(),
		BytesIn:       s.bytesIn.Get(),
		BytesOut:      s.bytesOut.Get(),
		Dropped:       sum(s.dropped[:]),
		DroppedBy: DropCounts{
			QueueFull:   s.dropped[DropQueueFull].Get(),
			RateLimited: s.dropped[DropRateLimited].Get(),
			NoRoute:     s.dropped[DropNoRoute].Get(),

			ClusterSendFailed:   s.dropped[DropClusterSendFailed].Get(),
			ClusterSlowConsumer: s.dropped[DropClusterSlowConsumer].Get(),
			ClusterMalformed:    s.dropped[DropClusterMalformed].Get(),
		},
		Rejected:   sum(s.rejected[:]),
		Evicted:    sum(s.evicted[:]),
		Goroutines: runtime.NumGoroutine(),
		HeapBytes:  heap,
		MaxClients: s.MaxClients,
	}
}

// DroppedBy returns the drop counter of r (for tests and the bench).
func (s *Stats) DroppedBy(r DropReason) uint64 { return s.dropped[r].Get() }

// EvictedBy returns the eviction counter of r.
func (s *Stats) EvictedBy(r EvictReason) uint64 { return s.evicted[r].Get() }

// RejectedBy returns the rejection counter of r.
func (s *Stats) RejectedBy(r RejectReason) uint64 { return s.rejected[r].Get() }
