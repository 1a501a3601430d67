package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
)

// When WSRELAY_TEST_MAIN is set, the test binary runs main itself: the
// signal test needs a real process.
func TestMain(m *testing.M) {
	if os.Getenv("WSRELAY_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "wsrelay ") {
		t.Fatalf("--version: %d %q", code, out.String())
	}
}

func TestPrintConfigMasksSecrets(t *testing.T) {
	var out, errb bytes.Buffer
	env := []string{"WSRELAY_JWT_SECRET=hunter2-very-secret", "WSRELAY_QUEUE_SIZE=99"}
	if code := run([]string{"--print-config"}, env, &out, &errb); code != 0 {
		t.Fatalf("--print-config: %d %s", code, errb.String())
	}
	s := out.String()
	if strings.Contains(s, "hunter2") || !strings.Contains(s, "WSRELAY_JWT_SECRET=******") || !strings.Contains(s, "WSRELAY_QUEUE_SIZE=99") {
		t.Fatalf("print-config:\n%s", s)
	}
}

func TestInvalidConfigExits2BeforeListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cases := []struct{ env, name string }{
		{"WSRELAY_PING_INTERVAL=soon", "WSRELAY_PING_INTERVAL"},
		{"WSRELAY_MAX_CLIENTS=-1", "WSRELAY_MAX_CLIENTS"},
		{"WSRELAY_AUTH=magic", "WSRELAY_AUTH"},
		{"WSRELAY_QUEUE_SIZE=0", "WSRELAY_QUEUE_SIZE"},
		{"WSRELAY_CLIENT_TIMEOUT=10s", "WSRELAY_CLIENT_TIMEOUT: must be longer than WSRELAY_PING_INTERVAL (25s), got 10s"},
		{"WSRELAY_JWT_PUBLIC_KEY_FILE=/nonexistent/key.pem", "WSRELAY_"},
		{"WSRELAY_JWT_PUBLIC_KEY_FILE=main_test.go", "WSRELAY_JWT_PUBLIC_KEY_FILE"}, // readable, not a key
		{"WSRELAY_JWT_SECRET=short", "WSRELAY_JWT_SECRET"},
		{"WSRELAY_TLS_CERT_FILE=main_test.go", "WSRELAY_TLS_CERT_FILE"},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := []string{"WSRELAY_ADDR=" + addr, tc.env}
			if strings.Contains(tc.env, "JWT_") {
				env = append(env, "WSRELAY_AUTH=jwt")
			}
			if strings.Contains(tc.env, "TLS_CERT") {
				env = append(env, "WSRELAY_TLS_KEY_FILE=main_test.go")
			}
			code := run(nil, env, &out, &errb)
			msg := errb.String()
			if code != 2 || !strings.Contains(msg, tc.name) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q", code, msg)
			}
		})
	}
	if code := run([]string{"--bogus"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

func TestBusyPortFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var errb bytes.Buffer
	start := time.Now()
	code := run(nil, []string{"WSRELAY_ADDR=" + ln.Addr().String()}, &bytes.Buffer{}, &errb)
	if code == 0 || time.Since(start) > 5*time.Second || !strings.Contains(errb.String(), "listen") {
		t.Fatalf("busy port: exit %d after %v: %s", code, time.Since(start), errb.String())
	}
}

// TestSIGTERMDrainsAndExits0 runs the real process, connects a client and
// sends SIGTERM: the client gets close 1001 and the process exits 0.
func TestSIGTERMDrainsAndExits0(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "--quiet")
	cmd.Env = append(os.Environ(), "WSRELAY_TEST_MAIN=1", "WSRELAY_ADDR="+addr, "WSRELAY_SHUTDOWN_TIMEOUT=3s")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay did not come up: %v; %s", err, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, err = c.ReceiveType(ctx, "none")
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 {
		t.Fatalf("client got %v, want close 1001", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr %s", err, errb.String())
	}
}

func TestHelpMentionsHealthcheck(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, nil, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	if !strings.Contains(errb.String(), "wsrelay healthcheck") {
		t.Fatalf("--help does not mention the healthcheck subcommand:\n%s", errb.String())
	}
}

func TestDemoURL(t *testing.T) {
	for _, tc := range []struct {
		addr string
		tls  bool
		want string
	}{
		{"[::]:8080", false, "http://localhost:8080/"},
		{"0.0.0.0:8080", false, "http://localhost:8080/"},
		{"127.0.0.1:9000", true, "https://127.0.0.1:9000/"},
		{"[::1]:8080", false, "http://[::1]:8080/"},
		{"192.0.2.7:80", false, "http://192.0.2.7:80/"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := demoURL(addr, tc.tls); got != tc.want {
				t.Errorf("demoURL(%s, %v) = %q, want %q", tc.addr, tc.tls, got, tc.want)
			}
		})
	}
}

// TestDemoURLLogged runs the real process with the demo on: the start-up log
// names the demo page's URL, and that URL serves the page.
func TestDemoURLLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WSRELAY_TEST_MAIN=1", "WSRELAY_ADDR="+addr, "WSRELAY_DEMO=true", "WSRELAY_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// The log's lines up to "demo page", by message.
	found := make(chan map[string]map[string]any, 1)
	go func() {
		defer close(found)
		lines := map[string]map[string]any{}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			msg, _ := line["msg"].(string)
			lines[msg] = line
			if msg == "demo page" {
				found <- lines
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
	}()
	var lines map[string]map[string]any
	select {
	case lines = <-found:
	case <-time.After(10 * time.Second):
		t.Fatal("no demo page line in the log within 10 s")
	}
	url, _ := lines["demo page"]["url"].(string)
	if want := "http://" + addr + "/"; url != want {
		t.Fatalf("demo url %q, want %q", url, want)
	}
	checkDocumentedLogLine(t, lines["listening"])
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// checkDocumentedLogLine compares the keys of a real "listening" line with
// the JSON example in docs/operations.md, so the documented log stays current.
func checkDocumentedLogLine(t *testing.T, real map[string]any) {
	t.Helper()
	doc, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented map[string]any
	for l := range strings.Lines(string(doc)) {
		if strings.HasPrefix(l, "{") && strings.Contains(l, `"msg":"listening"`) {
			if err := json.Unmarshal([]byte(l), &documented); err != nil {
				t.Fatalf("docs/operations.md: %v", err)
			}
		}
	}
	if documented == nil {
		t.Fatal(`docs/operations.md has no JSON "listening" line`)
	}
	for k := range real {
		if _, ok := documented[k]; !ok {
			t.Errorf("the listening line has %q, which docs/operations.md does not show", k)
		}
	}
	for k := range documented {
		if _, ok := real[k]; !ok {
			t.Errorf("docs/operations.md shows %q in the listening line, which wsrelay does not log", k)
		}
	}
}
