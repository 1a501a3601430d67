package relaytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
)

// Ctx returns a context that ends after d or when the test ends.
func Ctx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls f every few milliseconds until it is true, and fails the
// test after d.
func Eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Recv receives the next message of type typ within 5 s, skipping others.
func Recv(t testing.TB, c *client.Client, typ string) client.Message {
	t.Helper()
	m, err := c.ReceiveType(Ctx(t, 5*time.Second), typ)
	if err != nil {
		t.Fatalf("%s: waiting for %s: %v", c.PeerID(), typ, err)
	}
	return m
}

// Next receives the very next message within 5 s.
func Next(t testing.TB, c *client.Client) client.Message {
	t.Helper()
	m, err := c.Receive(Ctx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("%s: receive: %v", c.PeerID(), err)
	}
	return m
}

// Quiet asserts that c receives nothing within d.
func Quiet(t testing.TB, c *client.Client, d time.Duration) {
	t.Helper()
	m, err := c.Receive(Ctx(t, d))
	if err == nil {
		t.Fatalf("%s: unexpected message %s", c.PeerID(), m.Raw)
	}
}

// CloseCode waits for c's connection to end and returns the close code.
func CloseCode(t testing.TB, c *client.Client, within time.Duration) int {
	t.Helper()
	ctx := Ctx(t, within)
	for {
		_, err := c.Receive(ctx)
		if err == nil {
			continue
		}
		var ce *client.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("%s: waiting for close: %v", c.PeerID(), err)
	}
}

// Join joins room and waits for joined.
func Join(t testing.TB, c *client.Client, room string) client.Message {
	t.Helper()
	if err := c.Join(room, nil); err != nil {
		t.Fatal(err)
	}
	return Recv(t, c, "joined")
}

// QuietType asserts that c receives no message of type typ within d.
func QuietType(t testing.TB, c *client.Client, typ string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := c.ReceiveType(ctx, typ)
	if err == nil {
		t.Fatalf("%s got unexpected %s: %s", c.PeerID(), typ, m.Raw)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: %v", c.PeerID(), err)
	}
}
