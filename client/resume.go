package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// defaultResumeTimeout is how long a Client with Options.Resume tries to
// reconnect: the relay's default resume window.
const defaultResumeTimeout = 30 * time.Second

// track counts a data message of the session and follows the rooms the
// Client is in. It runs on the reader goroutine. The welcome itself is not
// a data message.
func (c *Client) track(m *Message) {
	if !c.welcomed {
		switch m.Type {
		case "welcome":
			c.welcomed = true
			c.token = m.Resume
		}
		return
	}
	c.received.Add(1)
	switch m.Type {
	case "joined":
		c.rooms[m.Room] = struct{}{}
	case "left":
		delete(c.rooms, m.Room)
	}
}

// resumableClose reports whether a connection that ended with code may be
// resumed: it was lost (1006), timed out or shut down by the relay (1000,
// 1001), or failed on the relay's side (1011-1014). A protocol or policy
// close, a replacement (4001) or the server API's disconnect (4000-4999)
// is final.
func resumableClose(code int) bool {
	switch code {
	case websocket.CloseAbnormalClosure, websocket.CloseNormalClosure, websocket.CloseGoingAway,
		websocket.CloseInternalServerErr, websocket.CloseServiceRestart, websocket.CloseTryAgainLater,
		1014:
		return true
	}
	return false
}

// reconnect dials the relay again, with the session's resume token and
// count, until it gets a welcome, Options.ResumeTimeout passes or the
// Client is closed. It runs on the reader goroutine and returns the
// "resumed" event to deliver. For a new session it re-joins the rooms the
// Client was in.
func (c *Client) reconnect() (Message, bool) {
	timeout := c.opts.ResumeTimeout
	if timeout <= 0 {
		timeout = defaultResumeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() { // ends with ctx: Close cancels the attempts
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil && !c.stopped() {
		conn, w, err := c.redial(ctx)
		if err == nil {
			old := c.conn.Load()
			c.install(conn)
			_ = old.Close()
			if c.stopped() {
				// Close ran meanwhile and may have missed conn: end the
				// session it opened with a close frame, so that it does
				// not wait detached for a resume that will never come.
				_ = conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(controlTimeout))
				_ = conn.Close()
				return Message{}, false
			}
			return c.resumed(w), true
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	return Message{}, false
}

// stopped reports whether Close or CloseNow was called.
func (c *Client) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// redial makes one attempt: the upgrade with resume=TOKEN&received=N, then
// the welcome (after answering a key-auth challenge).
func (c *Client) redial(ctx context.Context) (*websocket.Conn, Message, error) {
	u := *c.url
	q := u.Query()
	if c.token != "" {
		q.Set("resume", c.token)
		q.Set("received", strconv.FormatUint(c.received.Load(), 10))
	}
	u.RawQuery = q.Encode()
	conn, resp, err := c.dialer.DialContext(ctx, u.String(), c.header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, Message{}, err
	}
	deadline := time.Now().Add(c.dialer.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	m, err := readText(conn)
	if err == nil && m.Type == "challenge" && c.opts.Key != nil {
		sig := ed25519.Sign(c.opts.Key, []byte(authContext+m.Nonce))
		err = conn.WriteMessage(websocket.TextMessage,
			[]byte(`{"type":"auth","sig":"`+base64.RawURLEncoding.EncodeToString(sig)+`"}`))
		if err == nil {
			m, err = readText(conn)
		}
	}
	if err == nil && m.Type != "welcome" {
		err = ErrNoWelcome
	}
	if err != nil {
		_ = conn.Close()
		return nil, Message{}, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, m, nil
}

func readText(conn *websocket.Conn) (Message, error) {
	for {
		typ, raw, err := conn.ReadMessage()
		if err != nil {
			return Message{}, err
		}
		if typ == websocket.TextMessage {
			return decodeText(raw)
		}
	}
}

// resumed takes the welcome w of a reconnect and returns the event that
// reports it. A new session counts from 0 and re-joins the Client's rooms.
func (c *Client) resumed(w Message) Message {
	c.setWelcome(w)
	c.token = w.Resume
	ev := Message{Type: "resumed", Peer: w.Peer, Resumed: w.Resumed, Rooms: w.Rooms, Missed: w.Missed}
	if w.Resumed {
		return ev
	}
	c.received.Store(0)
	rooms := c.rooms
	c.rooms = make(map[string]struct{}, len(rooms))
	for room := range rooms {
		_ = c.Join(room, nil) // the joined reply arrives like any message
		ev.Rooms = append(ev.Rooms, room)
	}
	return ev
}
