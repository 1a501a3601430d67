package loop_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// churnSize is the number of connections of TestChurnHandshakes: the full
// size without the race detector, a smaller one under it (it slows the
// server about tenfold). WSRELAY_CHURN overrides it.
func churnSize(t *testing.T, full, race int) int {
	t.Helper()
	if s := os.Getenv("WSRELAY_CHURN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("WSRELAY_CHURN=%q: want a positive count", s)
		}
		return n
	}
	if raceEnabled {
		return race
	}
	return full
}

// TestChurnHandshakes opens and closes connections as fast as 64 clients
// can, the way a busy site's visitors do: dial, read the welcome, stay a
// few milliseconds, then leave abruptly (reset or plain FIN) or with a close
// frame. Peer ids are drawn from a small set, so that many connections
// replace an older one and the server closes that one meanwhile. Every
// handshake must succeed: a socket the server closes (replaced peers,
// answered close frames, resets) must never take a newer connection with it.
func TestChurnHandshakes(t *testing.T) {
	if testing.Short() {
		t.Skip("churn test skipped in -short mode")
	}
	total := churnSize(t, 20000, 5000)
	const clients = 64
	ts := relaytest.Start(t)
	addr := ts.Addr().String()

	var (
		next     atomic.Int64
		ok       atomic.Int64
		failed   atomic.Int64
		replaced atomic.Int64
		early    atomic.Int64
		errMu    sync.Mutex
		errs     = map[string]int{}
	)
	fail := func(err error) {
		failed.Add(1)
		what := err.Error()
		var ne net.Error
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			what = "connection closed before the welcome"
		case errors.As(err, &ne) && ne.Timeout():
			what = "timed out before the welcome"
		}
		errMu.Lock()
		errs[what]++
		errMu.Unlock()
	}
	deadline := time.Now().Add(3 * time.Minute)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			// Source addresses spread over 127.0.0.2-17 so that sockets in
			// TIME_WAIT cannot exhaust the ephemeral ports.
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+c%16))}}
			for {
				i := next.Add(1)
				if i > int64(total) || time.Now().After(deadline) {
					return
				}
				peer := "churn-" + strconv.Itoa(rng.IntN(200))
				cc, err := churnDial(&d, addr, peer)
				if errors.Is(err, errReplacedEarly) {
					early.Add(1)
					continue
				}
				if err != nil {
					fail(err)
					continue
				}
				ok.Add(1)
				time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
				if cc.closeAs(rng.IntN(3)) {
					replaced.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	done := ok.Load() + failed.Load() + early.Load()
	t.Logf("%d connections: %d welcomed, %d replaced before their welcome, %d failed; %d saw a replacement close",
		done, ok.Load(), early.Load(), failed.Load(), replaced.Load())
	if done < int64(total) {
		t.Errorf("only %d of %d connections were tried before the deadline", done, total)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d handshakes failed: %v", n, done, errs)
	}
	// Every socket closes on the server too.
	relaytest.Eventually(t, 10*time.Second, "all connections closed", func() bool { return ts.OpenConns() == 0 })
}

// churnConn is one connection of the churn test, welcomed.
type churnConn struct {
	nc *net.TCPConn
	br *bufio.Reader
}

// churnDial connects as peer and reads the 101 response and the welcome.
func churnDial(d *net.Dialer, addr, peer string) (*churnConn, error) {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	nc := c.(*net.TCPConn)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws?peer=" + peer + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("write request: %w", err)
	}
	br := bufio.NewReaderSize(nc, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	body := make([]byte, h[1]&0x7f)
	_, err = io.ReadFull(br, body)
	if err == nil && h[0] == 0x80|frame.OpClose && len(body) >= 2 && int(body[0])<<8|int(body[1]) == frame.CloseReplaced {
		nc.Close()
		return nil, errReplacedEarly
	}
	if err != nil || h[0] != 0x80|frame.OpText || !bytes.Contains(body, []byte(`"welcome"`)) {
		nc.Close()
		return nil, fmt.Errorf("welcome: header %x body %q err %v", h, body, err)
	}
	return &churnConn{nc: nc, br: br}, nil
}

// errReplacedEarly is a connection upgraded and then replaced by a newer
// connection of the same peer id before its welcome was written: the
// server closed it on purpose, with 4001.
var errReplacedEarly = errors.New("replaced before the welcome")

// closeAs ends the connection: 0 resets it, 1 closes the socket, 2 sends a
// close frame and waits for the server's. It reports whether the server had
// closed the connection first with 4001 (the peer connected again).
func (c *churnConn) closeAs(how int) (replaced bool) {
	defer c.nc.Close()
	_ = c.nc.SetReadDeadline(time.Now())
	replaced = c.sawReplaced()
	switch how {
	case 0:
		_ = c.nc.SetLinger(0)
	case 2:
		_, _ = c.nc.Write([]byte{0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2})
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c.br)
	}
	return replaced
}

// sawReplaced reads what already arrived and reports whether it holds a
// close frame with code 4001.
func (c *churnConn) sawReplaced() bool {
	var buf [256]byte
	n, _ := c.br.Read(buf[:])
	return bytes.Contains(buf[:n], []byte{0x88}) && bytes.Contains(buf[:n], []byte{0x0f, 0xa1})
}
