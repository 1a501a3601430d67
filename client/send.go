package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wsrelay/wsrelay/frame"
)

// The Send methods below write one request each and return once it has been
// written to the socket (not once the relay acted on it). They are safe for
// concurrent use; writes are serialized. None validates its arguments.
//
// id may be nil (no "id" field, so no ack) or any value encoded with
// json.Marshal, typically a number or a string; a json.RawMessage is sent
// unchanged. data is encoded with json.Marshal, except a json.RawMessage,
// which is sent byte for byte (nil or empty as null). After the connection
// has closed they return an error matching ErrClosed.

// Join asks to become a member of room; the relay replies "joined", or
// error forbidden when the peer's credential does not allow room.
func (c *Client) Join(room string, id any) error {
	return c.sendJSON("join", "room", room, false, nil, id)
}

// JoinWithToken asks to become a member of room on the strength of token,
// a room token issued by the application's backend (docs/protocol.md section
// 11: a JWT whose sub is this peer's base id and whose claim room is room).
// The relay replies "joined", or error forbidden when it refuses the token.
func (c *Client) JoinWithToken(room, token string, id any) error {
	return c.sendJSON("join", "room", room, false, nil, id, "token", token)
}

// Leave asks to stop being a member of room; the relay replies "left".
func (c *Client) Leave(room string, id any) error {
	return c.sendJSON("leave", "room", room, false, nil, id)
}

// Direct sends data to the peer to.
func (c *Client) Direct(to string, data any, id any) error {
	return c.sendJSON("direct", "to", to, true, data, id)
}

// Publish sends data to every other member of room.
func (c *Client) Publish(room string, data any, id any) error {
	return c.sendJSON("publish", "room", room, true, data, id)
}

// Broadcast sends data to every other connected peer (when the relay
// allows broadcast).
func (c *Client) Broadcast(data any, id any) error {
	return c.sendJSON("broadcast", "", "", true, data, id)
}

// Ping sends a protocol-level ping; the relay replies "pong". When the
// relay resumes sessions it carries "received", the count of messages
// received (Received), so the relay can let go of what it kept for a
// resume. For a WebSocket ping frame use WritePing.
func (c *Client) Ping(id any) error {
	if c.resumable.Load() {
		return c.sendJSON("ping", "received", strconv.FormatUint(c.received.Load(), 10), false, nil, id)
	}
	return c.sendJSON("ping", "", "", false, nil, id)
}

// SendBinary sends one binary frame: the client header built by
// frame.AppendClientHeader (op, ctype, flags, to) followed by payload. to is
// a peer id for frame.BinDirect, a room for frame.BinPublish, empty for
// frame.BinBroadcast. The header's to_len is one byte, so a to longer than
// 255 bytes is an error (send such a frame with SendRaw).
func (c *Client) SendBinary(op, ctype, flags byte, to string, payload []byte) error {
	if len(to) > 255 {
		return fmt.Errorf("client: binary: to is %d bytes, the header holds at most 255", len(to))
	}
	b := make([]byte, 0, 6+len(to)+len(payload))
	b = frame.AppendClientHeader(b, op, ctype, flags, to)
	b = append(b, payload...)
	return c.write(websocket.BinaryMessage, b)
}

// SendText sends raw as one text frame, unchanged (invalid JSON or invalid
// UTF-8 included), for tests of malformed input.
func (c *Client) SendText(raw []byte) error {
	return c.write(websocket.TextMessage, raw)
}

// SendRaw sends raw as one message of the given WebSocket type
// (websocket.TextMessage, BinaryMessage, CloseMessage, PingMessage,
// PongMessage), unchanged. Control frames carry at most 125 bytes.
func (c *Client) SendRaw(messageType int, raw []byte) error {
	switch messageType {
	case websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage:
		return c.writeControl(messageType, raw)
	}
	return c.write(messageType, raw)
}

// WritePing sends a WebSocket ping frame with payload (at most 125 bytes).
func (c *Client) WritePing(payload []byte) error {
	return c.writeControl(websocket.PingMessage, payload)
}

// sendJSON encodes {"type":typ[,key:val...][,"data":data][,"id":id]}, with
// the string fields key, val and then the pairs of more, and writes it as a
// text frame.
func (c *Client) sendJSON(typ, key, val string, withData bool, data, id any, more ...string) error {
	b := make([]byte, 0, 128)
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	kv := append([]string{key, val}, more...)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "" {
			continue
		}
		b = append(b, ',')
		b = appendString(b, kv[i])
		b = append(b, ':')
		if kv[i] == "received" { // a count, sent as a number
			b = append(b, kv[i+1]...)
			continue
		}
		b = appendString(b, kv[i+1])
	}
	var err error
	if withData {
		b = append(b, `,"data":`...)
		if b, err = appendValue(b, data); err != nil {
			return fmt.Errorf("client: %s: data: %w", typ, err)
		}
	}
	if id != nil {
		b = append(b, `,"id":`...)
		if b, err = appendValue(b, id); err != nil {
			return fmt.Errorf("client: %s: id: %w", typ, err)
		}
	}
	b = append(b, '}')
	return c.write(websocket.TextMessage, b)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}

// appendValue appends v as JSON: a json.RawMessage unchanged, anything else
// through json.Marshal.
func appendValue(b []byte, v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if len(raw) == 0 {
			return append(b, "null"...), nil
		}
		return append(b, raw...), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// write sends one data message; writes are serialized by wmu.
func (c *Client) write(messageType int, b []byte) error {
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	c.wmu.Lock()
	conn := c.conn.Load()
	if c.compressMin > 0 {
		conn.EnableWriteCompression(len(b) >= c.compressMin)
	}
	err := conn.WriteMessage(messageType, b)
	c.wmu.Unlock()
	return writeError(err)
}

// writeControl sends one control frame; gorilla allows it concurrently with
// data writes.
func (c *Client) writeControl(messageType int, b []byte) error {
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	return writeError(c.conn.Load().WriteControl(messageType, b, time.Now().Add(controlTimeout)))
}

func writeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, websocket.ErrCloseSent), errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: write: %w", ErrClosed, err)
	default:
		return fmt.Errorf("client: write: %w", err)
	}
}
