package client

import (
	"encoding/json"
	"fmt"

	"github.com/wsrelay/wsrelay/frame"
)

// Message is one message received from the relay. Type says which fields are
// set (docs/protocol.md section 3); the others are zero.
type Message struct {
	// Type is the JSON "type": "welcome", "joined", "left", "peer_joined",
	// "peer_left", "direct", "publish", "broadcast", "pong", "ack",
	// "overflow", "error" or "challenge"; or "binary" for a binary frame; or
	// "resumed", the event of a reconnect (Options.Resume), which the relay
	// never sends.
	Type string

	Peer  string   // welcome (own id), peer_joined, peer_left
	Room  string   // joined, left, peer_joined, peer_left, publish; binary publish
	From  string   // direct, publish, broadcast; binary
	Peers []string // joined: the other members

	// Data is the "data" value byte for byte as delivered, whitespace
	// included. Nil when the message has none.
	Data json.RawMessage
	// ID is the raw "id" token of an ack or error, e.g. 7 or "a".
	ID json.RawMessage

	Code, Message string // error
	Dropped       uint64 // overflow
	Time          int64  // pong: server unix milliseconds
	Nonce         string // challenge (auth mode key; Dial answers it)

	// welcome
	HeartbeatMS, TimeoutMS, MaxMessageBytes, QueueSize int64
	Server                                             string
	// welcome with session resume on (docs/protocol.md section 10): the
	// session's resume token (a secret), whether this connection resumed a
	// session, and for a resume its rooms and how many messages it missed.
	// The "resumed" event that Options.Resume delivers carries Resumed,
	// Rooms and Missed too.
	Resume  string
	Resumed bool
	Rooms   []string
	Missed  uint64

	// Raw is the whole frame as received, text or binary. Binary.Payload
	// points into it.
	Raw []byte
	// Binary is set for binary frames (Type "binary").
	Binary *Binary
}

// Binary is a decoded binary frame (docs/protocol.md section 4).
type Binary struct {
	Op, CType, Flags byte   // Op is frame.BinDirect, frame.BinPublish or frame.BinBroadcast
	From             string // sender's peer id
	To               string // room for publish, empty for direct and broadcast
	Payload          []byte // aliases Message.Raw
}

// wireMessage is the JSON shape of every server-to-client text message.
type wireMessage struct {
	Type            string          `json:"type"`
	Peer            string          `json:"peer"`
	Room            string          `json:"room"`
	From            string          `json:"from"`
	Peers           []string        `json:"peers"`
	Data            json.RawMessage `json:"data"`
	ID              json.RawMessage `json:"id"`
	Code            string          `json:"code"`
	Message         string          `json:"message"`
	Dropped         uint64          `json:"dropped"`
	Time            int64           `json:"time"`
	Nonce           string          `json:"nonce"`
	HeartbeatMS     int64           `json:"heartbeat_ms"`
	TimeoutMS       int64           `json:"timeout_ms"`
	MaxMessageBytes int64           `json:"max_message_bytes"`
	QueueSize       int64           `json:"queue_size"`
	Server          string          `json:"server"`
	Resume          string          `json:"resume"`
	Resumed         bool            `json:"resumed"`
	Rooms           []string        `json:"rooms"`
	Missed          uint64          `json:"missed"`
}

// decodeText decodes one text frame. On error the returned Message still
// carries the frame in Raw.
func decodeText(raw []byte) (Message, error) {
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return Message{Raw: raw}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if w.Type == "" {
		return Message{Raw: raw}, fmt.Errorf("%w: no type", ErrBadMessage)
	}
	return Message{
		Type:            w.Type,
		Peer:            w.Peer,
		Room:            w.Room,
		From:            w.From,
		Peers:           w.Peers,
		Data:            w.Data,
		ID:              w.ID,
		Code:            w.Code,
		Message:         w.Message,
		Dropped:         w.Dropped,
		Time:            w.Time,
		Nonce:           w.Nonce,
		HeartbeatMS:     w.HeartbeatMS,
		TimeoutMS:       w.TimeoutMS,
		MaxMessageBytes: w.MaxMessageBytes,
		QueueSize:       w.QueueSize,
		Server:          w.Server,
		Resume:          w.Resume,
		Resumed:         w.Resumed,
		Rooms:           w.Rooms,
		Missed:          w.Missed,
		Raw:             raw,
	}, nil
}

// decodeBinary decodes one binary frame. On error the returned Message has
// Type "binary" and the frame in Raw, but no Binary.
func decodeBinary(raw []byte) (Message, error) {
	var h frame.Header
	payload, err := frame.ParseServerHeader(raw, &h)
	if err != nil {
		return Message{Type: "binary", Raw: raw}, fmt.Errorf("%w: binary header: %w", ErrBadMessage, err)
	}
	b := &Binary{
		Op:      h.Op,
		CType:   h.CType,
		Flags:   h.Flags,
		From:    string(h.From),
		To:      string(h.To),
		Payload: payload,
	}
	m := Message{Type: "binary", From: b.From, Raw: raw, Binary: b}
	if h.Op == frame.BinPublish {
		m.Room = b.To
	}
	return m, nil
}
