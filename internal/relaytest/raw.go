package relaytest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// RawConn is a bare WebSocket client without goroutines: for tests that
// need many sockets or a peer that never reads.
type RawConn struct {
	net.Conn
	br *bufio.Reader
}

// RawDial upgrades path on addr with a fixed key and returns the
// connection past the 101 response.
func RawDial(t testing.TB, addr, path string) *RawConn {
	t.Helper()
	rc, err := TryRawDial(addr, path)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TryRawDial is RawDial for goroutines other than the test's: it returns
// the error instead of failing the test.
func TryRawDial(addr, path string) (*RawConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	rc, err := Upgrade(nc, addr, path)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return rc, nil
}

// Upgrade sends the upgrade request of path to host addr over nc, a plain
// or TLS connection, and reads the 101 response. On error the caller closes
// nc.
func Upgrade(nc net.Conn, addr, path string) (*RawConn, error) {
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	if _, err := nc.Write([]byte(req)); err != nil {
		return nil, fmt.Errorf("handshake write: %w", err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake read: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		return nil, fmt.Errorf("handshake: accept %q", got)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return &RawConn{Conn: nc, br: br}, nil
}

// SendFrame writes one masked frame.
func (rc *RawConn) SendFrame(fin bool, op byte, payload []byte) error {
	_, err := rc.Write(frame.AppendMaskedFrame(nil, fin, op, [4]byte{1, 2, 3, 4}, payload))
	return err
}

// ReadFrame reads one server frame (unmasked, unfragmented).
func (rc *RawConn) ReadFrame(d time.Duration) (op byte, payload []byte, err error) {
	_ = rc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err = io.ReadFull(rc.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(rc.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(b[0])<<8 | int(b[1])
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(rc.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, x := range b {
			n = n<<8 | int(x)
		}
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(rc.br, payload)
	return h[0] & 0x0f, payload, err
}

// ReadClose reads frames until a close frame and returns its code.
func (rc *RawConn) ReadClose(t testing.TB, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		op, p, err := rc.ReadFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for close frame: %v", err)
		}
		if op == frame.OpClose {
			if len(p) < 2 {
				return 1005
			}
			return int(p[0])<<8 | int(p[1])
		}
	}
}
