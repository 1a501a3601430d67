package api

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsrelay/wsrelay/frame"
)

// FuzzParseBody checks the body parsers against encoding/json: whatever they
// accept is a UTF-8 JSON object whose fields are valid, and data is one
// complete JSON value that re-parses to what the object holds.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{
		`{"room":"r","data":1}`, `{"to":"p","data":{"a":[1,2]}}`, `{"data":"x"}`,
		`{"peer":"p","code":4001,"reason":"bye"}`, `[]`, `{"room":"r","data":`, `{"room":"a b","data":1}`,
		"{\"data\":\"\xff\"}", `{"data":null}`, ` {"data":1} `, `{"peer":"p","code":4000.0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ref map[string]json.RawMessage
		refErr := json.Unmarshal(body, &ref)
		accepted := func(f *failure) bool {
			if f != nil {
				return false
			}
			if refErr != nil || ref == nil || !utf8.Valid(body) {
				t.Fatalf("accepted %q, which encoding/json refuses as an object (%v)", body, refErr)
			}
			return true
		}
		checkData := func(data json.RawMessage) {
			if !json.Valid(data) {
				t.Fatalf("data %q of %q is not one JSON value", data, body)
			}
		}
		if req, f := parsePublish(body); accepted(f) {
			checkData(req.Data)
			if !frame.ValidRoom([]byte(req.Room)) {
				t.Fatalf("accepted room %q", req.Room)
			}
		}
		if req, f := parseDirect(body); accepted(f) {
			checkData(req.Data)
			if !frame.ValidPeerID([]byte(req.To)) {
				t.Fatalf("accepted peer %q", req.To)
			}
		}
		if req, f := parseBroadcast(body); accepted(f) {
			checkData(req.Data)
		}
		if peer, code, reason, f := parseDisconnect(body); accepted(f) {
			if !frame.ValidPeerID([]byte(peer)) || code < 4000 || code > 4999 || len(reason) > 123 || !utf8.ValidString(reason) {
				t.Fatalf("accepted disconnect %q %d %q", peer, code, reason)
			}
		}
		if room, f := parseRoomPath(roomsPrefix + string(body)); f == nil {
			if !frame.ValidRoom([]byte(room)) || strings.Contains(string(body), "/") {
				t.Fatalf("accepted room path %q as %q", body, room)
			}
		}
	})
}
