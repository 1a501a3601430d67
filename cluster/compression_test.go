package cluster_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// TestCompressionAcrossNodes: frames cross NATS plain, and the receiving
// node compresses a room message for its members that negotiated
// permessage-deflate; a member on the sending node without the extension
// gets it plain. Every member reads it intact.
func TestCompressionAcrossNodes(t *testing.T) {
	ns := startNATS(t, 0)
	n1 := startNode(t, natsURL(ns), "n1", "WSRELAY_COMPRESSION=true")
	n2 := startNode(t, natsURL(ns), "n2", "WSRELAY_COMPRESSION=true")
	waitMesh(t, n1, n2)

	dial := func(n *node, peer string, compress bool) *client.Client {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, n.WS, &client.Options{Peer: peer, Compression: compress})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.Compressed() != compress {
			t.Fatalf("%s: Compressed() = %v, want %v", peer, c.Compressed(), compress)
		}
		return c
	}
	a := dial(n1, "a", true)
	plain := dial(n1, "plain", false)
	b := dial(n2, "b", true)
	for _, c := range []*client.Client{a, plain, b} {
		relaytest.Join(t, c, "room")
	}
	relaytest.Eventually(t, 5*time.Second, "memberships replicated", func() bool {
		return len(n1.Cluster.AppendMembers(nil, "room", 10)) == 1 && len(n2.Cluster.AppendMembers(nil, "room", 10)) == 2
	})

	data, _ := json.Marshal(strings.Repeat("a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host ", 60))
	if err := a.Publish("room", json.RawMessage(data), 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, a, "ack")
	for _, c := range []*client.Client{plain, b} {
		if m := relaytest.Recv(t, c, "publish"); string(m.Data) != string(data) || m.From != "a" {
			t.Fatalf("%s got %d bytes from %s, want the %d sent by a", c.PeerID(), len(m.Data), m.From, len(data))
		}
	}
	saved := func(n *node) int {
		_, body := n.get("/metrics")
		m := regexp.MustCompile(`(?m)^wsrelay_compression_saved_bytes_total (\d+)`).FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no wsrelay_compression_saved_bytes_total")
		}
		v, _ := strconv.Atoi(m[1])
		return v
	}
	if s := saved(n2); s < len(data)/2 {
		t.Errorf("n2 saved %d bytes delivering %d bytes to a compressed member, want most of them", s, len(data))
	}
	if s := saved(n1); s != 0 {
		t.Errorf("n1 saved %d bytes, but its only other member is plain", s)
	}
}
