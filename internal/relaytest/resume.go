package relaytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// Resumer is a raw WebSocket client of one session with resume on
// (docs/protocol.md section 10): it keeps the session's token and counts the
// data messages it reads, exactly as the contract says a client counts.
type Resumer struct {
	T testing.TB
	// Server is where Connect, Resume and ResumeAs dial; tests of a
	// cluster point it at another node between two connections.
	Server   *Server
	RC       *RawConn
	Peer     string
	Token    string
	Received uint64
	// Welcome is the welcome of the last connection.
	Welcome map[string]any
}

// DialSession opens a new session for peer on s and reads its welcome.
func DialSession(t testing.TB, s *Server, peer string) *Resumer {
	t.Helper()
	r := &Resumer{T: t, Server: s}
	r.Connect("/ws?peer=" + peer)
	if r.Welcome["resumed"] != false {
		t.Fatalf("a new session's welcome: %v", r.Welcome)
	}
	return r
}

// Connect upgrades path and reads the welcome.
func (r *Resumer) Connect(path string) {
	r.T.Helper()
	r.RC = RawDial(r.T, r.Server.Addr().String(), path)
	rc := r.RC
	r.T.Cleanup(func() { _ = rc.Close() })
	r.Welcome = r.ReadRaw()
	if r.Welcome["type"] != "welcome" {
		r.T.Fatalf("first message %v, want welcome", r.Welcome)
	}
	r.Peer, _ = r.Welcome["peer"].(string)
	r.Token, _ = r.Welcome["resume"].(string)
}

// Resume reconnects with the session's token and count.
func (r *Resumer) Resume() {
	r.T.Helper()
	r.ResumeAs(r.Token, r.Received, "")
}

// ResumeAs reconnects with token and received, plus the query parameters
// in extra ("&name=value..."). A welcome with "resumed":false starts the
// count again from 0.
func (r *Resumer) ResumeAs(token string, received uint64, extra string) {
	r.T.Helper()
	r.Connect(fmt.Sprintf("/ws?resume=%s&received=%d%s", url.QueryEscape(token), received, extra))
	if r.Welcome["resumed"] == false {
		r.Received = 0 // a new session counts from 0
	}
}

// ReadRaw reads the next text frame, skipping pings, without counting it.
func (r *Resumer) ReadRaw() map[string]any {
	r.T.Helper()
	for {
		op, p, err := r.RC.ReadFrame(5 * time.Second)
		if err != nil {
			r.T.Fatalf("%s: read: %v", r.Peer, err)
		}
		switch op {
		case frame.OpPing:
			continue
		case frame.OpText:
			var m map[string]any
			if err := json.Unmarshal(p, &m); err != nil {
				r.T.Fatalf("%s: %q: %v", r.Peer, p, err)
			}
			return m
		default:
			r.T.Fatalf("%s: frame op %d %q, want text", r.Peer, op, p)
		}
	}
}

// Read reads and counts the next data message.
func (r *Resumer) Read() map[string]any {
	r.T.Helper()
	m := r.ReadRaw()
	r.Received++
	return m
}

// Expect reads and counts the next data message and checks its type.
func (r *Resumer) Expect(typ string) map[string]any {
	r.T.Helper()
	m := r.Read()
	if m["type"] != typ {
		r.T.Fatalf("%s: got %v, want %s", r.Peer, m, typ)
	}
	return m
}

// Send sends msg as a text frame.
func (r *Resumer) Send(msg string) {
	r.T.Helper()
	if err := r.RC.SendFrame(true, frame.OpText, []byte(msg)); err != nil {
		r.T.Fatal(err)
	}
}

// Cut drops the TCP connection without a close frame.
func (r *Resumer) Cut() { _ = r.RC.Close() }
