package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/loop"
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
	srv, err := loop.New(cfg, loop.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var out, errs bytes.Buffer
	args := []string{"-url", "ws://" + srv.Addr().String() + "/ws", "-conns", "200", "-hold", "2s",
		"-procs", "1", "-q", "-json", "idle"}
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
}
