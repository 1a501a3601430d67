package session_test

import (
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/session"
)

// Through a real server: the welcome comes first, a routed message arrives,
// and an error carries the vocabulary's code, message and request id and is
// counted on /metrics.
func TestOverTheWire(t *testing.T) {
	ts := relaytest.Start(t)
	alice, bob := ts.Dial("alice"), ts.Dial("bob")
	if w := alice.Welcome(); w.Server != "wsrelay/test" || w.Peer != "alice" {
		t.Fatalf("welcome %s", w.Raw)
	}
	if err := alice.Direct("bob", "hi", nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, bob, "direct"); m.From != "alice" || string(m.Data) != `"hi"` {
		t.Fatalf("bob got %s", m.Raw)
	}
	if err := alice.SendText([]byte(`{"type":"shout","id":9}`)); err != nil {
		t.Fatal(err)
	}
	m := relaytest.Recv(t, alice, "error")
	if m.Code != session.CodeUnknownType.String() || m.Message != session.CodeUnknownType.Text() || string(m.ID) != "9" {
		t.Fatalf("alice got %s", m.Raw)
	}
	_, _, body := ts.Get("/metrics")
	if !strings.Contains(body, `wsrelay_errors_total{code="unknown_type"} 1`+"\n") {
		t.Fatal("unknown_type not counted on /metrics")
	}
}
