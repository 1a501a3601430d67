package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzScanEnvelope checks ScanEnvelope against encoding/json: it accepts
// exactly the valid JSON objects (nesting at most MaxDepth) whose last key
// spelled "type" has a string value, and its fields are the raw values
// encoding/json reads. Seeds are in testdata/fuzz/FuzzScanEnvelope.
func FuzzScanEnvelope(f *testing.F) {
	f.Add([]byte(`{"type":"direct","id":1,"to":"bob","data":{"a":[1,"x"]}}`))
	f.Add([]byte(`{"type":"join","id":"j","room":"r","token":"eyJh.eyJz.c2ln"}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		var e Envelope
		err := ScanEnvelope(msg, &e)
		if err != nil && err != ErrBadJSON {
			t.Fatalf("ScanEnvelope returned %v, not ErrBadJSON", err)
		}
		if !bytes.Equal(msg, orig) {
			t.Fatal("ScanEnvelope modified its input")
		}
		if err == nil {
			// The plain statement of the contract, before the exact model.
			var m map[string]json.RawMessage
			if !json.Valid(msg) || json.Unmarshal(msg, &m) != nil {
				t.Fatalf("accepted %q, which is not a JSON object", msg)
			}
			if !bytes.Contains(msg, []byte(`"type"`)) {
				t.Fatalf("accepted %q without a type key", msg)
			}
		}
		checkAgainstEncodingJSON(t, msg)

		// Whatever follows a complete message makes it invalid, unless it
		// is whitespace.
		if err == nil {
			if ScanEnvelope(append(bytes.Clone(msg), '{'), &e) == nil {
				t.Fatalf("accepted %q followed by {", msg)
			}
		}
	})
}

// FuzzParseHeader checks that the binary header parsers never panic, fail
// only with the ErrBinary* sentinels, accept only what the protocol allows,
// and round-trip through AppendClientHeader and AppendServerHeader. Seeds
// are in testdata/fuzz/FuzzParseHeader.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("\x01\x01\x00\x00\x00\x03bobpayload"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var h Header
		payload, err := ParseClientHeader(msg, &h)
		checkHeaderErr(t, err)
		if err == nil {
			switch {
			case h.Op == BinDirect && !ValidPeerID(h.To),
				h.Op == BinPublish && !ValidRoom(h.To),
				h.Op == BinBroadcast && len(h.To) != 0,
				len(h.From) != 0:
				t.Fatalf("ParseClientHeader(%q) accepted %+v", msg, h)
			}
			re := AppendClientHeader(nil, h.Op, h.CType, h.Flags, string(h.To))
			if re = append(re, payload...); !bytes.Equal(re, msg) {
				t.Fatalf("client round trip: %q became %q", msg, re)
			}
			// What the server relays, the client side parses back.
			to := ""
			if h.Op == BinPublish {
				to = string(h.To)
			}
			relayed := append(AppendServerHeader(nil, h.Op, h.CType, h.Flags, "from:1", to), payload...)
			var sh Header
			p2, err := ParseServerHeader(relayed, &sh)
			if err != nil || sh.Op != h.Op || sh.CType != h.CType || sh.Flags != h.Flags ||
				string(sh.From) != "from:1" || string(sh.To) != to || !bytes.Equal(p2, payload) {
				t.Fatalf("relaying %q: %+v %q %v", msg, sh, p2, err)
			}
		}

		payload, err = ParseServerHeader(msg, &h)
		checkHeaderErr(t, err)
		if err == nil {
			if !ValidPeerID(h.From) || (h.Op == BinPublish) != (len(h.To) > 0) {
				t.Fatalf("ParseServerHeader(%q) accepted %+v", msg, h)
			}
			re := AppendServerHeader(nil, h.Op, h.CType, h.Flags, string(h.From), string(h.To))
			if re = append(re, payload...); !bytes.Equal(re, msg) {
				t.Fatalf("server round trip: %q became %q", msg, re)
			}
		}
	})
}

func checkHeaderErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	switch err {
	case ErrBinaryShort, ErrBinaryVersion, ErrBinaryOp, ErrBinaryFromLen, ErrBinaryFrom, ErrBinaryTo:
	default:
		t.Fatalf("unexpected error %v", err)
	}
	if !errors.Is(err, ErrBadFrame) {
		t.Fatalf("%v does not match ErrBadFrame", err)
	}
}
