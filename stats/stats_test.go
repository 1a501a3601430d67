package stats

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestSnapshotSplitsDropsByReason(t *testing.T) {
	s := New(metrics.NewSet(), 10)
	s.Drop(DropNoRoute, 3)
	s.Drop(DropQueueFull, 2)
	s.Drop(DropRateLimited, 1)

	body, err := json.Marshal(s.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Dropped   uint64            `json:"dropped"`
		DroppedBy map[string]uint64 `json:"dropped_by_reason"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Dropped != 6 {
		t.Errorf("dropped = %d, want 6 (the sum over reasons)", got.Dropped)
	}
	want := map[string]uint64{"queue_full": 2, "rate_limited": 1, "no_route": 3,
		"cluster_send_failed": 0, "cluster_slow_consumer": 0, "cluster_malformed": 0}
	for reason, n := range want {
		if got.DroppedBy[reason] != n {
			t.Errorf("dropped_by_reason.%s = %d, want %d (body %s)", reason, got.DroppedBy[reason], n, body)
		}
	}
	if len(got.DroppedBy) != len(want) {
		t.Errorf("dropped_by_reason has %d keys, want the %d drop reasons: %s", len(got.DroppedBy), len(want), body)
	}
}

func TestFlowMetrics(t *testing.T) {
	set := metrics.NewSet()
	s := New(set, 10)
	s.FlowPaused()
	s.FlowPaused()
	s.FlowResumed(1500 * time.Millisecond)
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, line := range []string{
		"wsrelay_flow_pauses_total 2\n",
		"wsrelay_flow_paused_connections 1\n",
		"wsrelay_flow_paused_seconds_total 1.5\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("/metrics lacks %q:\n%s", line, b.String())
		}
	}
}
