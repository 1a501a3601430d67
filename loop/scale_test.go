package loop_test

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// lightDial upgrades a bare TCP connection and reads the 101 response and the
// welcome without buffering: 5,000 of these cost the test process little.
func lightDial(t *testing.T, addr string, i int) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %d: %v", i, err)
	}
	req := fmt.Sprintf("GET /ws?peer=p%d HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", i, addr)
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatalf("write %d: %v", i, err)
	}
	// Read until the end of the welcome frame: it is small and ends with '}'.
	var buf [512]byte
	n := 0
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) || buf[n-1] != '}' {
		m, err := nc.Read(buf[n:])
		if err != nil {
			t.Fatalf("read %d: %v after %q", i, err, buf[:n])
		}
		n += m
	}
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101")) {
		t.Fatalf("conn %d: %q", i, buf[:n])
	}
	return nc
}

// TestManyConnectionsFewGoroutines holds 5,000 connections and checks that
// the goroutine count does not grow with them.
func TestManyConnectionsFewGoroutines(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 sockets")
	}
	const n = 5000
	ts := relaytest.Start(t)
	addr := ts.Addr().String()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := range n {
		conns = append(conns, lightDial(t, addr, i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.Stats.Connections() != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ts.Stats.Connections(); got != n {
		t.Fatalf("server holds %d connections, want %d", got, n)
	}
	time.Sleep(600 * time.Millisecond) // let the sweeper take them in
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	g := runtime.NumGoroutine()
	if g >= 100 {
		t.Fatalf("%d goroutines with %d connections", g, n)
	}
	perConn := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d connections: %d goroutines (%d before), heap %d B per connection (server and this test's client sockets together)",
		n, g, g0, perConn)

	// They are all live peers: a message reaches the last one.
	rc := relaytest.RawDial(t, addr, "/ws?peer=sender")
	_, _, _ = rc.ReadFrame(time.Second)
	if err := rc.SendFrame(true, 1, []byte(fmt.Sprintf(`{"type":"direct","to":"p%d","data":1}`, n-1))); err != nil {
		t.Fatal(err)
	}
	var buf [128]byte
	_ = conns[n-1].SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := conns[n-1].Read(buf[:])
	if err != nil || !bytes.Contains(buf[:m], []byte(`"from":"sender"`)) {
		t.Fatalf("last peer read %q, %v", buf[:m], err)
	}
}
