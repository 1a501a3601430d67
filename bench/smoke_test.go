package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/config"
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

// TestIdleSmoke runs the idle scenario with 200 connections against an
// in-process relay, through a worker process, so that the harness cannot rot.
func TestIdleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a worker process")
	}
	cfg, err := config.Load([]string{"WSRELAY_ADDR=127.0.0.1:0", "WSRELAY_PING_INTERVAL=1s"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relaytest.Wire(cfg, relaytest.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var out, errs bytes.Buffer
	report := filepath.Join(t.TempDir(), "idle.html")
	args := []string{"-url", "ws://" + srv.Addr().String() + "/ws", "-conns", "200", "-hold", "2s",
		"-procs", "1", "-q", "-json", "-report", report, "idle"}
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("bench exited with %d:\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "idle: 200 conns") {
		t.Fatalf("want a summary line and a JSON line, got:\n%s", out.String())
	}
	var res struct {
		Connections int64 `json:"connections"`
		Goroutines  int64 `json:"goroutines_loaded"`
		Pings       int64 `json:"pings_answered"`
		Closed      int64 `json:"closed_by_server"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[1])
	}
	if res.Connections != 200 || res.Closed != 0 {
		t.Errorf("server held %d connections and closed %d, want 200 and 0", res.Connections, res.Closed)
	}
	if res.Pings < 200 {
		t.Errorf("%d server pings answered in 2 s at a 1 s interval, want at least 200", res.Pings)
	}
	if res.Goroutines <= 0 {
		t.Errorf("goroutines not reported: %s", lines[1])
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
	var out, errs bytes.Buffer
	args := []string{"-nodes", "2", "-conns", "100", "-room-members", "20", "-messages", "50", "-rate", "500",
		"-procs", "1", "-q", "-json", "cluster"}
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("bench exited with %d:\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "cluster: 2 nodes, 100 conns") {
		t.Fatalf("want a summary line and a JSON line, got:\n%s", out.String())
	}
	var res struct {
		Conns      []int64 `json:"connections_per_node"`
		Expected   int64   `json:"expected"`
		Deliveries int64   `json:"deliveries"`
		Remote     int64   `json:"room_members_remote"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[1])
	}
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
	cfg, err := config.Load([]string{"WSRELAY_ADDR=127.0.0.1:0", "WSRELAY_RATE_MSGS=0", "WSRELAY_STALL_TIMEOUT=200ms"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relaytest.Wire(cfg, relaytest.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var out, errs bytes.Buffer
	args := []string{"-url", "ws://" + srv.Addr().String() + "/ws", "-messages", "1000", "-members", "10",
		"-slow", "2", "-procs", "1", "-q", "-json", "burst"}
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("bench exited with %d:\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "burst: 1000 msgs") {
		t.Fatalf("want a summary line and a JSON line, got:\n%s", out.String())
	}
	var res struct {
		Delivered int64 `json:"delivered"`
		Expected  int64 `json:"expected"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[1])
	}
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
	var out, errs bytes.Buffer
	args := []string{"-url", "ws://" + srv.Addr().String() + "/ws", "-members", "50", "-messages", "20", "-size", "2048",
		"-compress", "-payload", "json", "-procs", "1", "-q", "-json", "fanout"}
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("bench exited with %d:\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a summary line and a JSON line, got:\n%s", out.String())
	}
	var res struct {
		Deliveries int64   `json:"deliveries"`
		Deflated   int64   `json:"deflated_deliveries"`
		Bytes      float64 `json:"bytes_out_per_delivery"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[1])
	}
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
	cfg, err := config.Load([]string{"WSRELAY_ADDR=127.0.0.1:0", "WSRELAY_API_KEY=" + benchAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relaytest.Wire(cfg, relaytest.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var out, errs bytes.Buffer
	args := []string{"-url", "ws://" + srv.Addr().String() + "/ws", "-members", "100", "-messages", "20",
		"-procs", "1", "-q", "-json", "api"}
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("bench exited with %d:\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "api: 100 members × 20 API publishes") {
		t.Fatalf("want a summary line and a JSON line, got:\n%s", out.String())
	}
	var res struct {
		Calls      int64 `json:"api_calls"`
		Deliveries int64 `json:"deliveries"`
		Lost       int64 `json:"lost"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[1])
	}
	if res.Calls != 20 || res.Deliveries != 100*20 || res.Lost != 0 {
		t.Errorf("%d calls, %d deliveries, %d lost; want 20, 2000, 0", res.Calls, res.Deliveries, res.Lost)
	}
}
