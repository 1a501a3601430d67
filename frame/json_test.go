package frame

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"bob", `"bob"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"\x00\x01\n\r\t\x1f", `"\u0000\u0001\u000a\u000d\u0009\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"</script>&", `"</script>&"`},
		{"日本\u2028", "\"日本\u2028\""},
		{"\xff\xfe", "\"\xff\xfe\""}, // passed through, not replaced
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := AppendString([]byte("prefix:"), tt.in)
			if string(got) != "prefix:"+tt.want {
				t.Fatalf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestAppendStringRoundTrip checks that every valid UTF-8 string, each ASCII
// byte in particular, decodes back to itself with encoding/json.
func TestAppendStringRoundTrip(t *testing.T) {
	var all strings.Builder
	for c := range 128 {
		all.WriteByte(byte(c))
	}
	inputs := []string{all.String(), "é日本😀", `"\"\\`, strings.Repeat(`x"`, 100)}
	for c := range 128 {
		inputs = append(inputs, string(rune(c)), "ab"+string(rune(c))+"cd")
	}
	for _, in := range inputs {
		out := AppendString(nil, in)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s, not valid JSON: %v", in, out, err)
		}
		if got != in {
			t.Fatalf("AppendString(%q) = %s decodes to %q", in, out, got)
		}
	}
}

func TestAppendMessages(t *testing.T) {
	data := []byte(`{"sdp":"v=0\r\n","n":[1,2.5,null]}`)
	tests := []struct {
		name   string
		got    []byte
		want   string
		fields map[string]any // the decoded message
	}{
		{
			"welcome",
			AppendWelcome(nil, "alice", "wsrelay/1.2.3", 25000, 60000, 65536, 256),
			`{"type":"welcome","peer":"alice","server":"wsrelay/1.2.3","heartbeat_ms":25000,"timeout_ms":60000,"max_message_bytes":65536,"queue_size":256}`,
			map[string]any{"type": "welcome", "peer": "alice", "server": "wsrelay/1.2.3", "heartbeat_ms": 25000.0,
				"timeout_ms": 60000.0, "max_message_bytes": 65536.0, "queue_size": 256.0},
		},
		{
			"welcome extremes",
			AppendWelcome(nil, "", "", 0, -1, math.MaxInt64, math.MinInt64),
			`{"type":"welcome","peer":"","server":"","heartbeat_ms":0,"timeout_ms":-1,"max_message_bytes":9223372036854775807,"queue_size":-9223372036854775808}`,
			nil,
		},
		{
			"joined",
			AppendJoined(nil, "lobby", []string{"a", "b:2"}),
			`{"type":"joined","room":"lobby","peers":["a","b:2"]}`,
			map[string]any{"type": "joined", "room": "lobby", "peers": []any{"a", "b:2"}},
		},
		{
			"joined alone (nil)",
			AppendJoined(nil, "r", nil),
			`{"type":"joined","room":"r","peers":[]}`,
			map[string]any{"type": "joined", "room": "r", "peers": []any{}},
		},
		{
			"joined alone (empty)",
			AppendJoined(nil, "r", []string{}),
			`{"type":"joined","room":"r","peers":[]}`,
			nil,
		},
		{
			"left",
			AppendLeft(nil, "org/room"),
			`{"type":"left","room":"org/room"}`,
			map[string]any{"type": "left", "room": "org/room"},
		},
		{
			"peer_joined",
			AppendPeerJoined(nil, "r", "p"),
			`{"type":"peer_joined","room":"r","peer":"p"}`,
			map[string]any{"type": "peer_joined", "room": "r", "peer": "p"},
		},
		{
			"peer_left",
			AppendPeerLeft(nil, "r", "p"),
			`{"type":"peer_left","room":"r","peer":"p"}`,
			map[string]any{"type": "peer_left", "room": "r", "peer": "p"},
		},
		{
			"direct",
			AppendDirect(nil, "alice", data),
			`{"type":"direct","from":"alice","data":` + string(data) + `}`,
			map[string]any{"type": "direct", "from": "alice", "data": map[string]any{"sdp": "v=0\r\n", "n": []any{1.0, 2.5, nil}}},
		},
		{
			"direct nil data",
			AppendDirect(nil, "alice", nil),
			`{"type":"direct","from":"alice","data":null}`,
			map[string]any{"type": "direct", "from": "alice", "data": nil},
		},
		{
			"publish",
			AppendPublish(nil, "r/1", "bob", []byte(`"hi"`)),
			`{"type":"publish","room":"r/1","from":"bob","data":"hi"}`,
			map[string]any{"type": "publish", "room": "r/1", "from": "bob", "data": "hi"},
		},
		{
			"publish empty data",
			AppendPublish(nil, "r", "bob", []byte{}),
			`{"type":"publish","room":"r","from":"bob","data":null}`,
			nil,
		},
		{
			"broadcast",
			AppendBroadcast(nil, "bob", []byte(`[1]`)),
			`{"type":"broadcast","from":"bob","data":[1]}`,
			map[string]any{"type": "broadcast", "from": "bob", "data": []any{1.0}},
		},
		{
			"pong",
			AppendPong(nil, 1700000000123),
			`{"type":"pong","time":1700000000123}`,
			map[string]any{"type": "pong", "time": 1700000000123.0},
		},
		{
			"ack number",
			AppendAck(nil, []byte(`12`)),
			`{"type":"ack","id":12}`,
			map[string]any{"type": "ack", "id": 12.0},
		},
		{
			"ack string",
			AppendAck(nil, []byte(`"req-1"`)),
			`{"type":"ack","id":"req-1"}`,
			map[string]any{"type": "ack", "id": "req-1"},
		},
		{
			"overflow",
			AppendOverflow(nil, math.MaxUint64),
			`{"type":"overflow","dropped":18446744073709551615}`,
			nil,
		},
		{
			"overflow small",
			AppendOverflow(nil, 3),
			`{"type":"overflow","dropped":3}`,
			map[string]any{"type": "overflow", "dropped": 3.0},
		},
		{
			"error",
			AppendError(nil, "peer_not_found", `no peer "bob"`, nil),
			`{"type":"error","code":"peer_not_found","message":"no peer \"bob\""}`,
			map[string]any{"type": "error", "code": "peer_not_found", "message": `no peer "bob"`},
		},
		{
			"error with id",
			AppendError(nil, "bad_request", "bad room", []byte(`"x"`)),
			`{"type":"error","code":"bad_request","message":"bad room","id":"x"}`,
			map[string]any{"type": "error", "code": "bad_request", "message": "bad room", "id": "x"},
		},
		{
			"error with empty id",
			AppendError(nil, "bad_json", "m", []byte{}),
			`{"type":"error","code":"bad_json","message":"m"}`,
			nil,
		},
		{
			"escaped strings",
			AppendPublish(nil, "r\"\\", "p\n", []byte(`1`)),
			`{"type":"publish","room":"r\"\\","from":"p\u000a","data":1}`,
			map[string]any{"type": "publish", "room": "r\"\\", "from": "p\n", "data": 1.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got  %s\nwant %s", tt.got, tt.want)
			}
			if !json.Valid(tt.got) {
				t.Fatalf("%s is not valid JSON", tt.got)
			}
			if tt.fields != nil {
				var m map[string]any
				if err := json.Unmarshal(tt.got, &m); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(m, tt.fields) {
					t.Fatalf("decoded %v, want %v", m, tt.fields)
				}
			}
			// Every server message is itself a valid envelope.
			var e Envelope
			if err := ScanEnvelope(tt.got, &e); err != nil || !strings.HasPrefix(tt.want, `{"type":"`+string(e.Type)+`",`) {
				t.Fatalf("ScanEnvelope = %v, type %q", err, e.Type)
			}
		})
	}
}

// TestAppendAppends checks that builders keep what dst held and reuse its
// capacity.
func TestAppendAppends(t *testing.T) {
	dst := make([]byte, 3, 256)
	copy(dst, "abc")
	out := AppendPublish(dst, "r", "p", []byte(`{}`))
	if string(out) != `abc{"type":"publish","room":"r","from":"p","data":{}}` {
		t.Fatalf("got %s", out)
	}
	if &out[0] != &dst[0] {
		t.Fatal("AppendPublish reallocated although dst had room")
	}
}

// TestAppendEchoesScannedFields checks the relay path end to end: fields
// scanned from a client message come out byte for byte in the reply.
func TestAppendEchoesScannedFields(t *testing.T) {
	msg := []byte(`{"type":"publish","id":"a\"1","room":"r","data":{"k":"\u00e9\n","v":[1e3,true]}}`)
	var e Envelope
	if err := ScanEnvelope(msg, &e); err != nil {
		t.Fatal(err)
	}
	out := AppendPublish(nil, string(e.Room), "me", e.Data)
	var got struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != string(e.Data) {
		t.Fatalf("data %s, want %s", got.Data, e.Data)
	}
	ack := AppendAck(nil, e.ID)
	var a struct{ ID string }
	if err := json.Unmarshal(ack, &a); err != nil || a.ID != `a"1` {
		t.Fatalf("ack %s decodes to %q, %v", ack, a.ID, err)
	}
	if !utf8.Valid(out) {
		t.Fatal("output is not UTF-8")
	}
}

func ExampleAppendPublish() {
	buf := make([]byte, 0, 128)
	buf = AppendPublish(buf, "lobby", "alice", []byte(`{"text":"hi"}`))
	fmt.Println(string(buf))
	buf = AppendError(buf[:0], "not_member", "join the room first", []byte(`42`))
	fmt.Println(string(buf))
	// Output:
	// {"type":"publish","room":"lobby","from":"alice","data":{"text":"hi"}}
	// {"type":"error","code":"not_member","message":"join the room first","id":42}
}

// JoinedLen is exact, so that a joined reply sized with it neither outgrows
// its buffer (an allocation, and a buffer lost to its pool) nor takes a
// larger class than it needs.
func TestJoinedLen(t *testing.T) {
	tests := []struct {
		room  string
		peers []string
	}{
		{"r", nil},
		{"lobby", []string{"a"}},
		{"lobby", []string{"a", "b:2", "peer-123"}},
		{"games/chess", []string{"alice", "bob", "carol", "dave", "erin", "frank"}},
	}
	for _, tt := range tests {
		if got, want := JoinedLen(tt.room, tt.peers), len(AppendJoined(nil, tt.room, tt.peers)); got != want {
			t.Errorf("JoinedLen(%q, %q) = %d, want %d", tt.room, tt.peers, got, want)
		}
	}
}

// PresenceLen is exact for peer_joined and 2 bytes more than peer_left, so
// that a presence notice takes the smallest buffer class it fits (it may
// stay in replay buffers for a while).
func TestPresenceLen(t *testing.T) {
	tests := []struct{ room, peer string }{
		{"r", "p1"},
		{"lobby", "3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"},
		{"games/chess", "alice"},
	}
	for _, tt := range tests {
		n := PresenceLen(tt.room, tt.peer)
		if j := len(AppendPeerJoined(nil, tt.room, tt.peer)); n != j {
			t.Errorf("PresenceLen(%q, %q) = %d, peer_joined is %d", tt.room, tt.peer, n, j)
		}
		if l := len(AppendPeerLeft(nil, tt.room, tt.peer)); n != l+2 {
			t.Errorf("PresenceLen(%q, %q) = %d, peer_left is %d", tt.room, tt.peer, n, l)
		}
	}
}
