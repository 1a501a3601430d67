package loop_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/loop"
)

// panicCounter counts nbio's reports of a recovered panic: nbio recovers
// panics of the connection handlers and only logs them, so a fuzz target
// that watched the socket alone would miss them.
type panicCounter struct{ n *atomic.Int64 }

func (h panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h panicCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h panicCounter) WithGroup(string) slog.Handler            { return h }
func (h panicCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && strings.Contains(r.Message, "failed: ") && strings.Contains(r.Message, "goroutine ") {
		h.n.Add(1)
	}
	return nil
}

// FuzzLiveConnection feeds random bytes to a live connection right after
// the upgrade, in turn on /ws (the relay: JSON and binary messages,
// routing, rate limit) and /echo, each with and without permessage-deflate
// negotiated (compressed messages, inflation limits), then drops the socket. The server must
// not panic, must keep serving another client, and must release the
// connection (the open-connection count returns to one: the probe's).
// One server serves every input of a fuzzing process.
func FuzzLiveConnection(f *testing.F) {
	mf := func(fin bool, op byte, p string) []byte {
		return frame.AppendMaskedFrame(nil, fin, op, [4]byte{1, 2, 3, 4}, []byte(p))
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	f.Add(mf(true, frame.OpText, `{"type":"join","room":"r"}`))
	f.Add(cat(mf(true, frame.OpText, `{"type":"join","room":"r"}`), mf(true, frame.OpText, `{"type":"publish","room":"r","data":{"a":[1,2]},"id":7}`)))
	f.Add(mf(true, frame.OpText, `{"type":"direct","to":"probe","data":"hi"}`))
	f.Add(mf(true, frame.OpBinary, "\x01\x01\x00\x00\x00\x05probehello"))
	f.Add(mf(true, frame.OpBinary, "\x01\x02\x07\x00\x00\x01rpayload"))
	f.Add(cat(mf(false, frame.OpText, `{"type":`), mf(true, frame.OpPing, "p"), mf(true, frame.OpContinuation, `"ping"}`)))
	f.Add(mf(true, frame.OpClose, "\x03\xe8bye"))
	f.Add(mf(true, frame.OpText, "\xed\xa0\x80"))
	f.Add(mf(true, frame.OpBinary, "")[:4])
	for _, m := range malformedFrames() {
		f.Add(m.bytes)
	}
	// Compressed messages: a join and a publish, a fragmented one, a bomb.
	zf := func(fin bool, op byte, p []byte) []byte {
		b := frame.AppendMaskedFrame(nil, fin, op, [4]byte{1, 2, 3, 4}, p)
		b[0] |= 0x40
		return b
	}
	f.Add(cat(zf(true, frame.OpText, deflated([]byte(`{"type":"join","room":"r"}`))), zf(true, frame.OpText, deflated([]byte(`{"type":"publish","room":"r","data":"`+strings.Repeat("ab", 400)+`"}`)))))
	z := deflated([]byte(strings.Repeat("hello ", 300)))
	f.Add(cat(zf(false, frame.OpBinary, z[:10]), mf(true, frame.OpContinuation, string(z[10:]))))
	f.Add(zf(true, frame.OpBinary, deflated(make([]byte, 1<<20))[:2000]))

	cfg, err := config.Load([]string{"WSRELAY_ADDR=127.0.0.1:0", "WSRELAY_ECHO=true", "WSRELAY_RATE_MSGS=0", "WSRELAY_MAX_MESSAGE_BYTES=4096", "WSRELAY_WORKERS=1", "WSRELAY_COMPRESSION=true"})
	if err != nil {
		f.Fatal(err)
	}
	var panics atomic.Int64
	loop.RouteEngineLogs(slog.New(panicCounter{&panics}))
	f.Cleanup(func() { loop.RouteEngineLogs(slog.New(slog.DiscardHandler)) })
	srv, err := relaytest.Wire(cfg, relaytest.Options{Version: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	addr := srv.Addr().String()
	probe := relaytest.RawDial(f, addr, "/echo")
	f.Cleanup(func() { probe.Close() })

	var round int
	f.Fuzz(func(t *testing.T, data []byte) {
		round++
		path := "/echo"
		if len(data)%2 == 0 {
			path = "/ws"
		}
		var rc net.Conn
		if len(data)%4 >= 2 {
			rc = zDial(t, addr, path, "permessage-deflate")
		} else {
			rc = relaytest.RawDial(t, addr, path)
		}
		_, _ = rc.Write(data)
		// Give the server the bytes, read what it answers, then vanish.
		_ = rc.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
		var sink [4096]byte
		for {
			if _, err := rc.Read(sink[:]); err != nil {
				break
			}
		}
		if tcp, ok := underlying(rc).(*net.TCPConn); ok && round%2 == 0 {
			_ = tcp.SetLinger(0)
		}
		rc.Close()

		if n := panics.Load(); n > 0 {
			t.Fatalf("the server recovered from %d panics", n)
		}
		msg := []byte("probe")
		if err := probe.SendFrame(true, frame.OpText, msg); err != nil {
			t.Fatalf("probe: %v", err)
		}
		for {
			op, p, err := probe.ReadFrame(5 * time.Second)
			if err != nil {
				t.Fatalf("probe echo: %v", err)
			}
			if op == frame.OpPing {
				continue // the server's heartbeat
			}
			if op != frame.OpText || string(p) != "probe" {
				t.Fatalf("probe echo: op %d %q", op, p)
			}
			break
		}
		deadline := time.Now().Add(5 * time.Second)
		for srv.OpenConns() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("open connections: %d, want 1 (the probe)", srv.OpenConns())
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
}

// underlying returns the socket of a test client connection.
func underlying(c net.Conn) net.Conn {
	switch c := c.(type) {
	case *relaytest.RawConn:
		return c.Conn
	case *zConn:
		return c.Conn
	}
	return c
}
