package relaytest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
)

// PublishBurst publishes n messages {"i":0..n-1,"p":"xx…"}, each with a
// pad of size bytes, from c to room as fast as c writes, asking an ack for
// the last one only (id "last"). It does not wait for that ack: see
// AckLast.
func PublishBurst(t testing.TB, c *client.Client, room string, n, size int) {
	t.Helper()
	pad := strings.Repeat("x", size)
	for i := range n {
		var id any
		if i == n-1 {
			id = "last"
		}
		if err := c.Publish(room, json.RawMessage(fmt.Sprintf(`{"i":%d,"p":%q}`, i, pad)), id); err != nil {
			t.Fatal(err)
		}
	}
}

// AckLast waits up to d for the ack of the last message of a PublishBurst
// (the relay routed all of the burst) and fails the test otherwise.
func AckLast(t testing.TB, c *client.Client, d time.Duration) {
	t.Helper()
	if m, err := c.ReceiveType(Ctx(t, d), "ack"); err != nil || string(m.ID) != `"last"` {
		t.Fatalf("%s: waiting for the ack of the burst's last message: got %s, %v", c.PeerID(), m.Raw, err)
	}
}
