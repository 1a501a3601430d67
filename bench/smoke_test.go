package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestMain lets the test binary serve as the harness's worker process, the
// way the harness binary re-executes itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		quietEngineLogs()
		os.Exit(runWorker())
	}
	os.Exit(m.Run())
}

// runSmoke runs the harness with args (one worker process, quiet, JSON
// output appended), checks that it prints a summary line starting with
// summary and a JSON line, and decodes the JSON line into res.
func runSmoke(t *testing.T, res any, summary string, args ...string) {
	t.Helper()
	var out, errs bytes.Buffer
	args = append([]string{"-procs", "1", "-q", "-json"}, args...)
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("bench exited with %d:\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], summary) {
		t.Fatalf("want a summary line starting with %q and a JSON line, got:\n%s", summary, out.String())
	}
	if err := json.Unmarshal([]byte(lines[1]), res); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[1])
	}
}

// wsURL is the WebSocket address of srv.
func wsURL(srv *relaytest.Server) string { return "ws://" + srv.Addr().String() + "/ws" }

// TestIdleSmoke runs the idle scenario with 200 connections against an
// in-process relay, through a worker process, so that the harness cannot rot.
func TestIdleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	srv := relaytest.Start(t, "WSRELAY_PING_INTERVAL=1s")
	report := filepath.Join(t.TempDir(), "idle.html")
	var res struct {
		Connections int64 `json:"connections"`
		Goroutines  int64 `json:"goroutines_loaded"`
		Pings       int64 `json:"pings_answered"`
		Closed      int64 `json:"closed_by_server"`
	}
	runSmoke(t, &res, "idle: 200 conns", "-url", wsURL(srv), "-conns", "200", "-hold", "2s", "-report", report, "idle")
	if res.Connections != 200 || res.Closed != 0 {
		t.Errorf("server held %d connections and closed %d, want 200 and 0", res.Connections, res.Closed)
	}
	if res.Pings < 200 {
		t.Errorf("%d server pings answered in 2 s at a 1 s interval, want at least 200", res.Pings)
	}
	if res.Goroutines <= 0 {
		t.Errorf("goroutines not reported: %+v", res)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "Server memory (RSS) and CPU over time") || strings.Contains(string(page), "latency distribution") {
		t.Errorf("the idle report must chart memory and CPU and have no (empty) latency section")
	}
}

// TestClusterSmoke runs the cluster scenario small: an embedded NATS server,
// two nodes built from this module, 100 connections and a room of 20 over
// both nodes, every delivery accounted for.
func TestClusterSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wsrelay and starts two nodes and a worker process")
	}
	var res struct {
		Conns      []int64 `json:"connections_per_node"`
		Expected   int64   `json:"expected"`
		Deliveries int64   `json:"deliveries"`
		Remote     int64   `json:"room_members_remote"`
	}
	runSmoke(t, &res, "cluster: 2 nodes, 100 conns", "-nodes", "2", "-conns", "100", "-room-members", "20",
		"-messages", "50", "-rate", "500", "cluster")
	if len(res.Conns) != 2 || res.Conns[0] != 50 || res.Conns[1] != 50 {
		t.Errorf("connections per node %v, want [50 50]", res.Conns)
	}
	if res.Expected != 19*50 || res.Deliveries != res.Expected || res.Remote != 10 {
		t.Errorf("delivered %d of %d (%d members remote), want %d of %d (10 remote)", res.Deliveries, res.Expected, res.Remote, 19*50, 19*50)
	}
}

// TestBurstSmoke runs the burst scenario small: every reader gets every
// message of a burst that its never-reading room mates cannot take.
func TestBurstSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	srv := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_STALL_TIMEOUT=200ms")
	var res struct {
		Delivered int64 `json:"delivered"`
		Expected  int64 `json:"expected"`
	}
	runSmoke(t, &res, "burst: 1000 msgs", "-url", wsURL(srv), "-messages", "1000", "-members", "10", "-slow", "2", "burst")
	if res.Expected != 10*1000 || res.Delivered != res.Expected {
		t.Errorf("readers got %d of %d messages, want all 10000", res.Delivered, res.Expected)
	}
}

// TestFanoutCompressSmoke runs the fanout scenario small with compression
// on both sides and SDP-like payloads: every delivery arrives, compressed,
// with fewer bytes on the wire than the payload.
func TestFanoutCompressSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	srv := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_COMPRESSION=true")
	var res struct {
		Deliveries int64   `json:"deliveries"`
		Deflated   int64   `json:"deflated_deliveries"`
		Bytes      float64 `json:"bytes_out_per_delivery"`
	}
	runSmoke(t, &res, "fanout: 50 members", "-url", wsURL(srv), "-members", "50", "-messages", "20", "-size", "2048",
		"-compress", "-payload", "json", "fanout")
	if res.Deliveries != 50*20 || res.Deflated != res.Deliveries {
		t.Errorf("%d deliveries, %d of them compressed; want %d, all compressed", res.Deliveries, res.Deflated, 50*20)
	}
	if res.Bytes <= 0 || res.Bytes > 2048*2/3 {
		t.Errorf("%.0f bytes sent per delivery of a 2048-byte SDP-like payload, want under two thirds", res.Bytes)
	}
}

// TestAPISmoke runs the api scenario small against an in-process relay with
// the server API on: 100 members, 20 API publishes, every one delivered.
func TestAPISmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	srv := relaytest.Start(t, "WSRELAY_API_KEY="+benchAPIKey)
	var res struct {
		Calls      int64 `json:"api_calls"`
		Deliveries int64 `json:"deliveries"`
		Lost       int64 `json:"lost"`
	}
	runSmoke(t, &res, "api: 100 members × 20 API publishes", "-url", wsURL(srv), "-members", "100", "-messages", "20", "api")
	if res.Calls != 20 || res.Deliveries != 100*20 || res.Lost != 0 {
		t.Errorf("%d calls, %d deliveries, %d lost; want 20, 2000, 0", res.Calls, res.Deliveries, res.Lost)
	}
}

// TestResumeSmoke runs the resume scenario small: 40 peers in rooms of 4,
// a fifth of the connections cut once and half of the sessions detached at
// once; every cut session resumes and every message arrives exactly once.
func TestResumeSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	srv := relaytest.Start(t, "WSRELAY_RATE_MSGS=0")
	var res resumeResult
	runSmoke(t, &res, "resume: 40 peers in rooms of 4", "-url", wsURL(srv), "-peers", "40", "-room-size", "4", "-rate", "400",
		"-cut", "0.2", "-outage", "200ms", "-duration", "1800ms", "-detach", "0.5", "-hold", "500ms", "resume")
	// One round of cuts (8 connections) and 20 detached.
	if res.Cuts != 28 || res.Resumes != res.Cuts || res.ResumedFalse != 0 || res.Missed != 0 {
		t.Errorf("%d cuts, %d resumes, %d resumed:false, %d missed; want 28 cuts, as many resumes, 0, 0", res.Cuts, res.Resumes, res.ResumedFalse, res.Missed)
	}
	if res.Expected < 3*400 || res.Received != res.Expected || res.Lost != 0 || res.Short != 0 || res.Duplicates != 0 {
		t.Errorf("received %d of %d (lost %d, %d duplicates), want all of at least %d, no duplicates", res.Received, res.Expected, res.Lost, res.Duplicates, 3*400)
	}
	if res.Detached != 20 || res.DetachedAfter != 0 {
		t.Errorf("wsrelay_sessions_detached %v while away and %v after, want 20 and 0", res.Detached, res.DetachedAfter)
	}
	if res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("resume time p50 %vms p99 %vms", res.P50, res.P99)
	}
}

// TestResumeSmokeCountsLoss checks that the resume scenario sees loss: with
// a resume window shorter than the outage every resume gets a new session,
// and the messages sent meanwhile are reported lost.
func TestResumeSmokeCountsLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	srv := relaytest.Start(t, "WSRELAY_RATE_MSGS=0", "WSRELAY_RESUME_WINDOW=50ms")
	var res resumeResult
	runSmoke(t, &res, "resume: 20 peers", "-url", wsURL(srv), "-peers", "20", "-room-size", "4", "-rate", "400",
		"-cut", "0.5", "-outage", "500ms", "-duration", "1500ms", "-detach", "0", "resume")
	if res.Cuts != 10 || res.ResumedFalse != res.Cuts {
		t.Errorf("%d cuts, %d resumed:false; want 10 and all", res.Cuts, res.ResumedFalse)
	}
	if res.Lost <= 0 || res.Received+res.Lost != res.Expected || res.Short == 0 {
		t.Errorf("received %d of %d, lost %d, %d receivers short: want a loss counted", res.Received, res.Expected, res.Lost, res.Short)
	}
}

// resumeResult is the part of the resume scenario's JSON line the smoke
// tests check.
type resumeResult struct {
	Cuts          int64   `json:"cuts"`
	Resumes       int64   `json:"resumes"`
	ResumedFalse  int64   `json:"resumed_false"`
	Missed        int64   `json:"missed"`
	Expected      int64   `json:"expected"`
	Received      int64   `json:"received"`
	Lost          int64   `json:"lost"`
	Duplicates    int64   `json:"duplicates"`
	Short         int64   `json:"receivers_short"`
	Detached      float64 `json:"detached_gauge"`
	DetachedAfter float64 `json:"detached_gauge_after"`
	P50           float64 `json:"resume_p50_ms"`
	P99           float64 `json:"resume_p99_ms"`
}
