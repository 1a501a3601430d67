package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/loop"
)

// target is the relay under test: a child process the harness started, or a
// URL given with -url.
type target struct {
	host string // host:port
	path string // /ws
	cmd  *exec.Cmd
	pid  int
	dir  string       // temporary directory of the built binary
	srv  *loop.Server // -inproc: the relay in this process
	http *http.Client

	mu      sync.Mutex
	samples []sample // memory and CPU over time, taken by the sampler
	stop    chan struct{}
	wg      sync.WaitGroup
}

// sample is one reading of the server's resources.
type sample struct {
	At      time.Time
	RSS     int64   // bytes
	CPU     float64 // seconds, user + system, since the process started
	HWM     int64   // peak RSS (bytes); only for a child process
	Threads int     // OS threads; only for a child process
	Writes  int64   // write-like system calls so far (syscw of /proc/PID/io); only with /proc
}

// serverStats is the part of /stats the harness reads.
type serverStats struct {
	Connections int64 `json:"connections"`
	Rooms       int64 `json:"rooms"`
	MessagesIn  int64 `json:"messages_in"`
	MessagesOut int64 `json:"messages_out"`
	BytesOut    int64 `json:"bytes_out"`
	Dropped     int64 `json:"dropped"`
	Rejected    int64 `json:"rejected"`
	Evicted     int64 `json:"evicted"`
	Goroutines  int64 `json:"goroutines"`
	HeapBytes   int64 `json:"heap_bytes"`
}

// startServer builds wsrelay (or uses bin) and starts it on a free loopback
// port with env added to the harness's environment.
func startServer(bin string, env []string) (*target, error) {
	t := &target{path: "/ws", http: &http.Client{Timeout: 5 * time.Second}, stop: make(chan struct{})}
	if bin == "" {
		dir, err := os.MkdirTemp("", "wsrelay-bench-")
		if err != nil {
			return nil, err
		}
		t.dir = dir
		bin = filepath.Join(dir, "wsrelay")
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = root
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("build wsrelay: %w", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.host = ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"WSRELAY_ADDR="+t.host,
		"WSRELAY_LOG_LEVEL=warn",
		"WSRELAY_MAX_CLIENTS=200000",
		"WSRELAY_MAX_ROOMS_PER_PEER=64",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start wsrelay: %w", err)
	}
	t.cmd, t.pid = cmd, cmd.Process.Pid
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := t.http.Get("http://" + t.host + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.close()
			return nil, fmt.Errorf("wsrelay did not answer /health: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return t, nil
}

// inprocServer starts the relay inside the harness process, for profiling:
// its memory and CPU readings then include the harness's own (small) share.
func inprocServer(env []string) (*target, error) {
	cfg, err := config.Load(append([]string{"WSRELAY_ADDR=127.0.0.1:0", "WSRELAY_MAX_CLIENTS=200000"}, env...))
	if err != nil {
		return nil, err
	}
	srv, err := relaytest.Wire(cfg, relaytest.Options{Version: "bench"})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return &target{host: srv.Addr().String(), path: "/ws", pid: os.Getpid(), srv: srv.Server,
		http: &http.Client{Timeout: 5 * time.Second}, stop: make(chan struct{})}, nil
}

// remoteTarget targets a running relay by URL (ws://host:port/ws).
func remoteTarget(rawURL string) (*target, error) {
	u := strings.TrimPrefix(strings.TrimPrefix(rawURL, "ws://"), "http://")
	if strings.HasPrefix(u, "wss://") || strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("only ws:// targets are supported (the load client speaks plain WebSocket)")
	}
	host, path, _ := strings.Cut(u, "/")
	t := &target{host: host, path: "/" + path, http: &http.Client{Timeout: 5 * time.Second}, stop: make(chan struct{})}
	if path == "" {
		t.path = "/ws"
	}
	if _, err := t.stats(); err != nil {
		return nil, fmt.Errorf("target %s: %w", rawURL, err)
	}
	return t, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the harness inside the wsrelay module, or give -server or -url")
	}
	return filepath.Dir(mod), nil
}

func (t *target) close() {
	t.stopSampler()
	if t.srv != nil {
		t.srv.Close()
	}
	if t.cmd != nil {
		_ = t.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = t.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = t.cmd.Process.Kill()
			<-done
		}
	}
	if t.dir != "" {
		os.RemoveAll(t.dir)
	}
}

// stats reads /stats.
func (t *target) stats() (serverStats, error) {
	var s serverStats
	resp, err := t.http.Get("http://" + t.host + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/stats: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// metrics reads the series of /metrics whose names start with prefix, keyed
// by name with labels.
func (t *target) metrics(prefix string) (map[string]float64, error) {
	resp, err := t.http.Get("http://" + t.host + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// read takes one sample: from /proc for a child process, else from /metrics.
func (t *target) read() (sample, error) {
	s := sample{At: time.Now()}
	if t.pid == 0 {
		m, err := t.metrics("process_")
		if err != nil {
			return s, err
		}
		s.RSS = int64(m["process_resident_memory_bytes"])
		s.CPU = m["process_cpu_seconds_total"]
		return s, nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.CPU = float64(ut+st) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.pid))
	if err != nil {
		return s, err
	}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", t.pid)); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			if v, ok := strings.CutPrefix(line, "syscw: "); ok {
				s.Writes, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			s.RSS = kib(v)
		case "VmHWM":
			s.HWM = kib(v)
		case "Threads":
			s.Threads, _ = strconv.Atoi(v)
		}
	}
	return s, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func kib(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	return n << 10
}

// startSampler samples every period into t.samples until stopSampler.
func (t *target) startSampler(period time.Duration) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			if s, err := t.read(); err == nil {
				t.mu.Lock()
				t.samples = append(t.samples, s)
				t.mu.Unlock()
			}
			select {
			case <-t.stop:
				return
			case <-tick.C:
			}
		}
	}()
}

func (t *target) stopSampler() {
	select {
	case <-t.stop:
		return
	default:
	}
	close(t.stop)
	t.wg.Wait()
}

func (t *target) history() []sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]sample(nil), t.samples...)
}

// peakRSS returns the highest RSS seen since the sampler started.
func (t *target) peakRSS() int64 {
	var p int64
	for _, s := range t.history() {
		p = max(p, s.RSS, s.HWM)
	}
	return p
}

// settle waits until the server's RSS stops changing by more than 1 % over a
// second (at most max), so memory is read after the allocator settled.
func (t *target) settle(ctx context.Context, limit time.Duration) sample {
	end := time.Now().Add(limit)
	prev, _ := t.read()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return prev
		case <-time.After(time.Second):
		}
		s, err := t.read()
		if err != nil {
			return prev
		}
		d := s.RSS - prev.RSS
		prev = s
		if d < 0 {
			d = -d
		}
		if float64(d) < 0.01*float64(s.RSS) {
			break
		}
	}
	return prev
}

// drain reads and discards a response body.
func drain(r io.ReadCloser) { _, _ = io.Copy(io.Discard, r); r.Close() }
