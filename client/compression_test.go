package client

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// TestCompression dials a server that accepts permessage-deflate, or not,
// with Options.Compression on and off, and checks what was negotiated and
// that large and small messages cross intact both ways.
func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		name          string
		server, offer bool
	}{
		{"both", true, true},
		{"client only", false, true},
		{"server only", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			big := `{"type":"direct","to":"bob","data":"` + strings.Repeat("a=candidate:1 1 udp 2122260223 ", 200) + `"}`
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				offered  string
				received []string
			)
			up := websocket.Upgrader{EnableCompression: tc.server}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wg.Add(1)
				defer wg.Done()
				mu.Lock()
				offered = r.Header.Get("Sec-WebSocket-Extensions")
				mu.Unlock()
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, welcomeFmt, "alice"))
				ws.WriteMessage(websocket.TextMessage, []byte(big))
				for {
					_, p, err := ws.ReadMessage()
					if err != nil {
						return
					}
					mu.Lock()
					received = append(received, string(p))
					mu.Unlock()
				}
			}))
			defer func() { srv.Close(); wg.Wait() }()

			c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), &Options{Compression: tc.offer})
			if got, want := c.Compressed(), tc.server && tc.offer; got != want {
				t.Fatalf("Compressed() = %v, want %v", got, want)
			}
			mu.Lock()
			gotOffer := offered
			mu.Unlock()
			if strings.Contains(gotOffer, "permessage-deflate") != tc.offer {
				t.Fatalf("client offered %q with Compression %v", gotOffer, tc.offer)
			}
			m, err := c.Receive(testCtx(t))
			if err != nil || m.Type != "direct" || len(m.Raw) != len(big) {
				t.Fatalf("Receive = %d bytes, %v; want the %d-byte message", len(m.Raw), err, len(big))
			}
			if err := c.SendText([]byte(big)); err != nil {
				t.Fatal(err)
			}
			if err := c.Ping(nil); err != nil {
				t.Fatal(err)
			}
			c.Close()
			srv.Close()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(received) != 2 || received[0] != big || received[1] != `{"type":"ping"}` {
				t.Fatalf("server received %d messages, want the large one and a ping intact", len(received))
			}
		})
	}
}
