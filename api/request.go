package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/wsrelay/wsrelay/frame"
)

// Sender is the "from" of every message the API sends. It is not a valid
// peer id, so no peer can speak as the server.
const Sender = "@server"

// Disconnect's defaults and bounds (docs/protocol.md sections 12 and 14).
const (
	DefaultCloseCode   = 4000
	DefaultCloseReason = "disconnected"
	minCloseCode       = 4000
	maxCloseCode       = 4999
	// maxCloseReason is what fits in a close frame after the code.
	maxCloseReason = 123
)

// Bodies of the calls. data is the raw JSON value, relayed byte for byte.
type (
	publishReq struct {
		Room string          `json:"room"`
		Data json.RawMessage `json:"data"`
	}
	directReq struct {
		To   string          `json:"to"`
		Data json.RawMessage `json:"data"`
	}
	broadcastReq struct {
		Data json.RawMessage `json:"data"`
	}
	disconnectReq struct {
		Peer   string  `json:"peer"`
		Code   *int    `json:"code"`
		Reason *string `json:"reason"`
	}
)

// decode fills v from body, a JSON object. Unknown fields are ignored. Not
// UTF-8, not JSON, or not an object is bad_json; a field of the wrong type
// is bad_request.
func decode(body []byte, v any) *failure {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !utf8.Valid(body) || !json.Valid(body) {
		return errBadJSON
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badField(fmt.Sprintf("field %q has the wrong type", te.Field))
		}
		return badField("invalid field")
	}
	return nil
}

func parsePublish(body []byte) (publishReq, *failure) {
	var req publishReq
	if f := decode(body, &req); f != nil {
		return req, f
	}
	switch {
	case !frame.ValidRoom([]byte(req.Room)):
		return req, badField(`"room" must be 1 to 128 letters, digits or . _ : / -`)
	case req.Data == nil:
		return req, badField(`"data" is missing`)
	}
	return req, nil
}

func parseDirect(body []byte) (directReq, *failure) {
	var req directReq
	if f := decode(body, &req); f != nil {
		return req, f
	}
	switch {
	case !frame.ValidPeerID([]byte(req.To)):
		return req, badField(`"to" must be a peer id: 1 to 64 letters, digits or . _ : -`)
	case req.Data == nil:
		return req, badField(`"data" is missing`)
	}
	return req, nil
}

func parseBroadcast(body []byte) (broadcastReq, *failure) {
	var req broadcastReq
	if f := decode(body, &req); f != nil {
		return req, f
	}
	if req.Data == nil {
		return req, badField(`"data" is missing`)
	}
	return req, nil
}

// parseDisconnect also fills in the default code and reason.
func parseDisconnect(body []byte) (peer string, code int, reason string, f *failure) {
	var req disconnectReq
	if f := decode(body, &req); f != nil {
		return "", 0, "", f
	}
	code, reason = DefaultCloseCode, DefaultCloseReason
	if req.Code != nil {
		code = *req.Code
	}
	if req.Reason != nil {
		reason = *req.Reason
	}
	switch {
	case !frame.ValidPeerID([]byte(req.Peer)):
		return "", 0, "", badField(`"peer" must be a peer id: 1 to 64 letters, digits or . _ : -`)
	case code < minCloseCode || code > maxCloseCode:
		return "", 0, "", badField(`"code" must be between 4000 and 4999`)
	case len(reason) > maxCloseReason:
		return "", 0, "", badField(`"reason" must be at most 123 bytes`)
	}
	return req.Peer, code, reason, nil
}

// parseRoomPath takes the room out of the escaped path of GET /api/rooms/R:
// one path segment, percent-encoded ("/" as %2F).
func parseRoomPath(escaped string) (string, *failure) {
	seg, ok := strings.CutPrefix(escaped, roomsPrefix)
	if !ok || strings.Contains(seg, "/") {
		return "", errUnknownCall
	}
	room, err := url.PathUnescape(seg)
	if err != nil || !frame.ValidRoom([]byte(room)) {
		return "", badField("the room must be 1 to 128 letters, digits or . _ : / -, percent-encoded as one path segment")
	}
	return room, nil
}
