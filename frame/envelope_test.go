package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestScanEnvelope(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want Envelope // compared when ok
		ok   bool
	}{
		{"type only", `{"type":"ping"}`, Envelope{Type: bs("ping")}, true},
		{"empty type", `{"type":""}`, Envelope{Type: bs("")}, true},
		{"escaped type stays raw", `{"type":"a\"b\u0041"}`, Envelope{Type: bs(`a\"b\u0041`)}, true},
		{"all fields", `{"type":"direct","id":12,"to":"bob","room":"r/1","data":{"x":[1,2,{"y":null}]}}`,
			Envelope{Type: bs("direct"), ID: bs("12"), To: bs("bob"), Room: bs("r/1"), Data: bs(`{"x":[1,2,{"y":null}]}`), HasTo: true, HasRoom: true}, true},
		{"string id keeps quotes", `{"type":"join","id":"abc","room":"lobby"}`,
			Envelope{Type: bs("join"), ID: bs(`"abc"`), Room: bs("lobby"), HasRoom: true}, true},
		{"whitespace everywhere", " \t\r\n{ \"type\" :\t\"x\" , \"data\"\n:\r[ 1 , 2 ] }\n ",
			Envelope{Type: bs("x"), Data: bs("[ 1 , 2 ]")}, true},
		{"data null is present", `{"type":"x","data":null}`, Envelope{Type: bs("x"), Data: bs("null")}, true},
		{"data string raw", `{"type":"x","data":"a\nb"}`, Envelope{Type: bs("x"), Data: bs(`"a\nb"`)}, true},
		{"data number", `{"data":-1.5e+10,"type":"x"}`, Envelope{Type: bs("x"), Data: bs("-1.5e+10")}, true},
		{"to not a string", `{"type":"x","to":5}`, Envelope{Type: bs("x"), HasTo: true}, true},
		{"room not a string", `{"type":"x","room":["a"]}`, Envelope{Type: bs("x"), HasRoom: true}, true},
		{"room empty string", `{"type":"x","room":""}`, Envelope{Type: bs("x"), Room: bs(""), HasRoom: true}, true},
		{"join with a room token", `{"type":"join","room":"r","token":"eyJh.eyJz.c2ln"}`,
			Envelope{Type: bs("join"), Room: bs("r"), HasRoom: true, Token: bs("eyJh.eyJz.c2ln"), HasToken: true}, true},
		{"token not a string", `{"type":"join","token":{"a":1}}`, Envelope{Type: bs("join"), HasToken: true}, true},
		{"token null", `{"type":"join","token":null}`, Envelope{Type: bs("join"), HasToken: true}, true},
		{"nested keys ignored", `{"type":"x","data":{"type":1,"to":"z","room":"q"}}`,
			Envelope{Type: bs("x"), Data: bs(`{"type":1,"to":"z","room":"q"}`)}, true},
		{"unknown keys ignored", `{"from":"mallory","type":"x","extra":[true,false]}`, Envelope{Type: bs("x")}, true},
		{"last duplicate wins", `{"type":"a","to":"p","type":"b","to":"q"}`, Envelope{Type: bs("b"), To: bs("q"), HasTo: true}, true},
		{"duplicate to, last not a string", `{"type":"a","to":"p","to":null}`, Envelope{Type: bs("a"), HasTo: true}, true},
		{"escaped key does not match", `{"type":"a","t\u0079pe":1,"\u0074o":"x"}`, Envelope{Type: bs("a")}, true},
		{"non-ASCII strings", `{"type":"é","data":"日本"}`, Envelope{Type: bs("é"), Data: bs(`"日本"`)}, true},
		{"invalid UTF-8 in a string", "{\"type\":\"\xff\xfe\"}", Envelope{Type: bs("\xff\xfe")}, true},

		{"empty", ``, Envelope{}, false},
		{"only whitespace", " \n", Envelope{}, false},
		{"array", `[{"type":"x"}]`, Envelope{}, false},
		{"string", `"type"`, Envelope{}, false},
		{"null", `null`, Envelope{}, false},
		{"empty object", `{}`, Envelope{}, false},
		{"no type", `{"data":1}`, Envelope{}, false},
		{"type number", `{"type":1}`, Envelope{}, false},
		{"type null", `{"type":null}`, Envelope{}, false},
		{"type object", `{"type":{"a":"b"}}`, Envelope{}, false},
		{"last type not a string", `{"type":"a","type":true}`, Envelope{}, false},
		{"two objects", `{"type":"a"}{"type":"b"}`, Envelope{}, false},
		{"trailing garbage", `{"type":"a"}x`, Envelope{}, false},
		{"trailing comma", `{"type":"a",}`, Envelope{}, false},
		{"missing colon", `{"type" "a"}`, Envelope{}, false},
		{"missing comma", `{"type":"a" "data":1}`, Envelope{}, false},
		{"unquoted key", `{type:"a"}`, Envelope{}, false},
		{"single quotes", `{'type':'a'}`, Envelope{}, false},
		{"unterminated", `{"type":"a"`, Envelope{}, false},
		{"unterminated string", `{"type":"a}`, Envelope{}, false},
		{"bad escape", `{"type":"a\x"}`, Envelope{}, false},
		{"short unicode escape", `{"type":"\u12"}`, Envelope{}, false},
		{"control char in string", "{\"type\":\"a\tb\"}", Envelope{}, false},
		{"NUL in string", "{\"type\":\"a\x00\"}", Envelope{}, false},
		{"bad data literal", `{"type":"a","data":tru}`, Envelope{}, false},
		{"capital literal", `{"type":"a","data":True}`, Envelope{}, false},
		{"leading zero", `{"type":"a","data":01}`, Envelope{}, false},
		{"plus sign", `{"type":"a","data":+1}`, Envelope{}, false},
		{"bare minus", `{"type":"a","data":-}`, Envelope{}, false},
		{"dot without digits", `{"type":"a","data":1.}`, Envelope{}, false},
		{"exponent without digits", `{"type":"a","data":1e}`, Envelope{}, false},
		{"hex number", `{"type":"a","data":0x1}`, Envelope{}, false},
		{"NaN", `{"type":"a","data":NaN}`, Envelope{}, false},
		{"unclosed array", `{"type":"a","data":[1,2}`, Envelope{}, false},
		{"mismatched close", `{"type":"a","data":{"b":1]}`, Envelope{}, false},
		{"trailing comma in array", `{"type":"a","data":[1,]}`, Envelope{}, false},
		{"empty value", `{"type":"a","data":}`, Envelope{}, false},
		{"bad data after type", `{"type":"a","data":{"x"}}`, Envelope{}, false},
		{"BOM", "\ufeff{\"type\":\"a\"}", Envelope{}, false},
		{"vertical tab", "\v{\"type\":\"a\"}", Envelope{}, false},
		{"comment", `{"type":"a"/*c*/}`, Envelope{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAgainstEncodingJSON(t, []byte(tt.msg))
			var e Envelope
			err := ScanEnvelope([]byte(tt.msg), &e)
			if !tt.ok {
				if err != ErrBadJSON {
					t.Fatalf("ScanEnvelope(%q) = %v, want ErrBadJSON", tt.msg, err)
				}
				if !envelopeEqual(e, Envelope{}) {
					t.Fatalf("ScanEnvelope(%q) failed but left %s", tt.msg, fmtEnvelope(e))
				}
				return
			}
			if err != nil {
				t.Fatalf("ScanEnvelope(%q) = %v", tt.msg, err)
			}
			if !envelopeEqual(e, tt.want) {
				t.Fatalf("ScanEnvelope(%q):\n got %s\nwant %s", tt.msg, fmtEnvelope(e), fmtEnvelope(tt.want))
			}
		})
	}
}

func TestScanEnvelopeDepth(t *testing.T) {
	nest := func(depth int, open, close string) string {
		// The top-level object is depth 1; data holds depth-1 more levels.
		return `{"type":"x","data":` + strings.Repeat(open, depth-1) + strings.Repeat(close, depth-1) + `}`
	}
	tests := []struct {
		name string
		msg  string
		ok   bool
	}{
		{"arrays at the limit", nest(MaxDepth, "[", "]"), true},
		{"arrays past the limit", nest(MaxDepth+1, "[", "]"), false},
		{"objects at the limit", objNest(MaxDepth), true},
		{"objects past the limit", objNest(MaxDepth + 1), false},
		{"mixed at the limit", mixedNest(MaxDepth), true},
		{"mixed past the limit", mixedNest(MaxDepth + 1), false},
		{"a million brackets", `{"type":"x","data":` + strings.Repeat("[", 1e6), false},
		{"siblings do not add up", `{"type":"x","data":[` + strings.Repeat(nest(MaxDepth-2, "[", "]")+",", 100) + `1]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Envelope
			err := ScanEnvelope([]byte(tt.msg), &e)
			if (err == nil) != tt.ok {
				t.Fatalf("ScanEnvelope(depth test) = %v, want ok=%v", err, tt.ok)
			}
			if !json.Valid([]byte(tt.msg)) && tt.ok {
				t.Fatal("test message is not valid JSON")
			}
		})
	}
}

// objNest returns an envelope whose nesting depth, counting the top-level
// object, is depth, made of objects only.
func objNest(depth int) string {
	return `{"type":"x","data":` + strings.Repeat(`{"a":`, depth-2) + `{}` + strings.Repeat("}", depth-2) + `}`
}

// mixedNest alternates arrays and objects down to depth.
func mixedNest(depth int) string {
	var open, close strings.Builder
	for d := 2; d <= depth; d++ {
		if d%2 == 0 {
			open.WriteString(`[1,`)
			close.WriteString(`]`)
		} else {
			open.WriteString(`{"k":"v","a":`)
			close.WriteString(`}`)
		}
	}
	c := close.String()
	// The innermost container gets a plain value instead of a deeper one.
	o := open.String()
	if depth%2 == 0 {
		o += "2"
	} else {
		o += `"s"`
	}
	rev := []byte(c)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return `{"type":"x","data":` + o + string(rev) + `}`
}

func TestScanEnvelopeAliasing(t *testing.T) {
	msg := []byte(`{"type":"direct","id":"q","to":"bob","room":"r","data":[1],"token":"t"}`)
	orig := string(msg)
	var e Envelope
	if err := ScanEnvelope(msg, &e); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string][]byte{"Type": e.Type, "ID": e.ID, "To": e.To, "Room": e.Room, "Data": e.Data, "Token": e.Token} {
		if cap(f) != len(f) {
			t.Errorf("%s: cap %d != len %d, appending would overwrite the message", name, cap(f), len(f))
		}
		_ = append(f, "XXXXXXXX"...)
	}
	if string(msg) != orig {
		t.Fatalf("message changed to %s", msg)
	}
	// The fields are sub-slices, not copies.
	msg[len(`{"type":"`)] = 'D'
	if string(e.Type) != "Direct" {
		t.Fatalf("Type = %q, want a sub-slice of the message", e.Type)
	}
}

func TestScanEnvelopeResets(t *testing.T) {
	var e Envelope
	if err := ScanEnvelope([]byte(`{"type":"a","id":1,"to":"b","room":"c","data":2,"token":"t"}`), &e); err != nil {
		t.Fatal(err)
	}
	if err := ScanEnvelope([]byte(`{"type":"ping"}`), &e); err != nil {
		t.Fatal(err)
	}
	if want := (Envelope{Type: bs("ping")}); !envelopeEqual(e, want) {
		t.Fatalf("got %s, want %s", fmtEnvelope(e), fmtEnvelope(want))
	}
	_ = ScanEnvelope([]byte(`{"type":"a","to":"b"}`), &e)
	if err := ScanEnvelope([]byte(`{"to":"b"}`), &e); err != ErrBadJSON {
		t.Fatalf("err = %v", err)
	}
	if !envelopeEqual(e, Envelope{}) {
		t.Fatalf("after an error got %s, want zero", fmtEnvelope(e))
	}
}

// TestScanEnvelopeStrings moves each byte that ends or breaks a string fast
// path through every position of strings around the 8-byte word size.
func TestScanEnvelopeStrings(t *testing.T) {
	specials := []string{`"`, `\`, `\"`, `\\`, `\n`, `\u00e9`, `\u00`, `\q`, "\x00", "\x1f", "\t", " ", "\x7f", "\x80", "é", "\xff"}
	for n := 0; n <= 24; n++ {
		for pos := 0; pos <= n; pos++ {
			for _, sp := range specials {
				s := strings.Repeat("a", pos) + sp + strings.Repeat("b", n-pos)
				for _, msg := range []string{
					`{"type":"` + s + `"}`,
					`{"type":"x","data":"` + s + `"}`,
					`{"type":"x","data":["` + s + `",1]}`,
				} {
					checkAgainstEncodingJSON(t, []byte(msg))
				}
			}
		}
	}
}

// TestScanEnvelopeMatchesEncodingJSON compares ScanEnvelope with
// encoding/json on random messages, valid ones and mutated ones.
func TestScanEnvelopeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	accepted := 0
	for range n {
		msg := randomEnvelope(r)
		if r.IntN(2) == 0 {
			msg = mutate(r, msg)
		}
		if checkAgainstEncodingJSON(t, msg) {
			accepted++
		}
		if t.Failed() {
			return
		}
	}
	// Guard against a generator that only makes garbage (or nothing else).
	if accepted < n/4 || accepted > n*9/10 {
		t.Fatalf("%d of %d random messages accepted; the generator is off", accepted, n)
	}
}

// randomEnvelope returns a random, valid JSON object that usually carries
// some of the envelope keys.
func randomEnvelope(r *rand.Rand) []byte {
	var sb []byte
	sb = append(sb, ws(r)...)
	sb = append(sb, '{')
	keys := []string{`"type"`, `"id"`, `"to"`, `"room"`, `"data"`, `"token"`, `"from"`, `"x"`, `"t\u0079pe"`, `"ty\"pe"`}
	nk := r.IntN(6)
	for k := range nk {
		if k > 0 {
			sb = append(sb, ',')
		}
		sb = append(sb, ws(r)...)
		sb = append(sb, keys[r.IntN(len(keys))]...)
		sb = append(sb, ws(r)...)
		sb = append(sb, ':')
		sb = append(sb, ws(r)...)
		sb = randomValue(r, sb, 0)
		sb = append(sb, ws(r)...)
	}
	if nk == 0 || r.IntN(3) > 0 {
		if nk > 0 {
			sb = append(sb, ',')
		}
		sb = append(sb, `"type":`...)
		sb = randomString(r, sb)
	}
	sb = append(sb, '}')
	return append(sb, ws(r)...)
}

func ws(r *rand.Rand) string {
	return [...]string{"", "", "", " ", "\n", "\t ", "\r\n  "}[r.IntN(7)]
}

func randomValue(r *rand.Rand, sb []byte, depth int) []byte {
	k := r.IntN(9)
	if depth > 4 && k >= 7 {
		k = r.IntN(7)
	}
	switch k {
	case 0:
		return append(sb, [...]string{"true", "false", "null"}[r.IntN(3)]...)
	case 1, 2:
		return append(sb, [...]string{"0", "-0", "12", "-7.25", "1e9", "6.02E+23", "1.5e-7", "123456789012345678901234567890"}[r.IntN(8)]...)
	case 3, 4, 5, 6:
		return randomString(r, sb)
	case 7:
		sb = append(sb, '[')
		for i := range r.IntN(4) {
			if i > 0 {
				sb = append(sb, ',')
			}
			sb = append(sb, ws(r)...)
			sb = randomValue(r, sb, depth+1)
		}
		return append(sb, ']')
	default:
		sb = append(sb, '{')
		for i := range r.IntN(4) {
			if i > 0 {
				sb = append(sb, ',')
			}
			sb = randomString(r, sb)
			sb = append(sb, ':')
			sb = randomValue(r, sb, depth+1)
		}
		return append(sb, '}')
	}
}

func randomString(r *rand.Rand, sb []byte) []byte {
	pieces := []string{"a", "bob", "lobby/1", "é", "日本語", `\"`, `\\`, `\/`, `\n`, `\u00e9`, `\uD83D\uDE00`, " ", "0123456789abcdef"}
	sb = append(sb, '"')
	for range r.IntN(6) {
		sb = append(sb, pieces[r.IntN(len(pieces))]...)
	}
	return append(sb, '"')
}

// mutate damages msg in one random way; the result may still be valid.
func mutate(r *rand.Rand, msg []byte) []byte {
	m := bytes.Clone(msg)
	if len(m) == 0 {
		return m
	}
	i := r.IntN(len(m))
	switch r.IntN(5) {
	case 0: // truncate
		return m[:i]
	case 1: // overwrite a byte with a structural or odd one
		const odd = `{}[]:,"\ 0-.eE+tfnu` + "\x00\x1f\xff"
		m[i] = odd[r.IntN(len(odd))]
	case 2: // delete a byte
		return append(m[:i], m[i+1:]...)
	case 3: // insert a byte
		c := `{}[]:,"\ 1`[r.IntN(10)]
		return append(m[:i], append([]byte{c}, m[i:]...)...)
	default: // append garbage
		return append(m, `x}]"`[r.IntN(4)])
	}
	return m
}

// checkAgainstEncodingJSON compares ScanEnvelope(msg) with refEnvelope(msg)
// and reports whether ScanEnvelope accepted msg.
func checkAgainstEncodingJSON(t testing.TB, msg []byte) bool {
	t.Helper()
	var e Envelope
	err := ScanEnvelope(msg, &e)
	want, ok := refEnvelope(msg)
	if ok != (err == nil) {
		t.Errorf("ScanEnvelope(%q) = %v, but encoding/json says ok=%v", msg, err, ok)
		return err == nil
	}
	if ok && !envelopeEqual(e, want) {
		t.Errorf("ScanEnvelope(%q):\n got %s\nwant %s (from encoding/json)", msg, fmtEnvelope(e), fmtEnvelope(want))
	}
	return err == nil
}

// refEnvelope is the model of ScanEnvelope built on encoding/json: msg must
// be valid JSON (json.Valid), nest at most MaxDepth deep, and be an object
// whose last top-level key spelled exactly "type" has a string value. Field
// values are the raw values encoding/json's Decoder reads for the last key
// spelled exactly like each envelope key; to find how a key was spelled it
// cuts the raw key out of msg by the Decoder's input offsets. When no key is
// written with escapes it also cross-checks the result with a plain
// json.Unmarshal into a map of raw values.
func refEnvelope(msg []byte) (Envelope, bool) {
	if !json.Valid(msg) || jsonDepth(msg) > MaxDepth {
		return Envelope{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Envelope{}, false
	}
	var e Envelope
	typeOK := false
	escapedKeys := false
	contents := func(v []byte) ([]byte, bool) {
		if v[0] != '"' {
			return nil, false
		}
		return v[1 : len(v)-1], true
	}
	for dec.More() {
		before := dec.InputOffset()
		if _, err := dec.Token(); err != nil {
			panic(fmt.Sprintf("refEnvelope: key of valid JSON %q: %v", msg, err))
		}
		rawKey := bytes.TrimLeft(msg[before:dec.InputOffset()], " \t\r\n,")
		key := string(rawKey[1 : len(rawKey)-1])
		if strings.Contains(key, `\`) {
			escapedKeys = true
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(fmt.Sprintf("refEnvelope: value of valid JSON %q: %v", msg, err))
		}
		v = bytes.TrimSpace(v)
		switch key {
		case "type":
			e.Type, typeOK = contents(v)
		case "id":
			e.ID = v
		case "to":
			e.To, _ = contents(v)
			e.HasTo = true
		case "room":
			e.Room, _ = contents(v)
			e.HasRoom = true
		case "data":
			e.Data = v
		case "received":
			e.Received = v
		case "token":
			e.Token, _ = contents(v)
			e.HasToken = true
		}
	}
	if !escapedKeys {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(msg, &m); err != nil {
			panic(fmt.Sprintf("refEnvelope: Unmarshal of a valid object %q: %v", msg, err))
		}
		typ, has := m["type"]
		_, hasTo := m["to"]
		_, hasRoom := m["room"]
		_, hasToken := m["token"]
		if (has && typ[0] == '"') != typeOK || hasTo != e.HasTo || hasRoom != e.HasRoom || hasToken != e.HasToken ||
			!bytes.Equal(m["data"], e.Data) || !bytes.Equal(m["id"], e.ID) || !bytes.Equal(m["received"], e.Received) {
			panic(fmt.Sprintf("refEnvelope: Decoder and Unmarshal disagree on %q", msg))
		}
	}
	if !typeOK {
		return Envelope{}, false
	}
	return e, true
}

// jsonDepth returns how deeply the valid JSON text msg nests.
func jsonDepth(msg []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range msg {
		switch {
		case escaped:
			escaped = false
		case inString:
			inString = c != '"'
			escaped = c == '\\'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

func bs(s string) []byte { return []byte(s) }

// envelopeEqual compares field by field, telling nil from empty.
func envelopeEqual(a, b Envelope) bool {
	eq := func(x, y []byte) bool { return (x == nil) == (y == nil) && bytes.Equal(x, y) }
	return eq(a.Type, b.Type) && eq(a.ID, b.ID) && eq(a.To, b.To) && eq(a.Room, b.Room) && eq(a.Data, b.Data) &&
		eq(a.Token, b.Token) && eq(a.Received, b.Received) && a.HasTo == b.HasTo && a.HasRoom == b.HasRoom && a.HasToken == b.HasToken
}

func fmtEnvelope(e Envelope) string {
	q := func(x []byte) string {
		if x == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("{Type:%s ID:%s To:%s Room:%s Data:%s Token:%s Received:%s HasTo:%v HasRoom:%v HasToken:%v}",
		q(e.Type), q(e.ID), q(e.To), q(e.Room), q(e.Data), q(e.Token), q(e.Received), e.HasTo, e.HasRoom, e.HasToken)
}

func TestValidPeerID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"Alice-01", true},
		{"tg:12345:phone", true},
		{"a.b_c:d-e", true},
		{strings.Repeat("x", MaxPeerIDLen), true},
		{"", false},
		{strings.Repeat("x", MaxPeerIDLen+1), false},
		{"a/b", false}, // allowed in rooms only
		{"a b", false},
		{"é", false},
		{"a\x00", false},
		{"a@b", false},
		{"<script>", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ValidPeerID([]byte(tt.id)); got != tt.ok {
				t.Fatalf("ValidPeerID(%q) = %v, want %v", tt.id, got, tt.ok)
			}
		})
	}
}

func TestValidRoom(t *testing.T) {
	tests := []struct {
		room string
		ok   bool
	}{
		{"lobby", true},
		{"org/team:42/chat.v2_x-y", true},
		{"/", true},
		{strings.Repeat("r", MaxRoomLen), true},
		{"", false},
		{strings.Repeat("r", MaxRoomLen+1), false},
		{"a b", false},
		{"a\\b", false},
		{"a?b", false},
		{"ä", false},
	}
	for _, tt := range tests {
		t.Run(tt.room, func(t *testing.T) {
			if got := ValidRoom([]byte(tt.room)); got != tt.ok {
				t.Fatalf("ValidRoom(%q) = %v, want %v", tt.room, got, tt.ok)
			}
		})
	}
}

// TestValidChars checks every byte value against the protocol's character
// sets.
func TestValidChars(t *testing.T) {
	for c := range 256 {
		letterOrDigit := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		peer := letterOrDigit || strings.ContainsRune("._:-", rune(c))
		room := peer || c == '/'
		if got := ValidPeerID([]byte{byte(c)}); got != peer {
			t.Errorf("ValidPeerID(%q) = %v", byte(c), got)
		}
		if got := ValidRoom([]byte{byte(c)}); got != room {
			t.Errorf("ValidRoom(%q) = %v", byte(c), got)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		raw string
		ok  bool
	}{
		{`12`, true},
		{`0`, true},
		{`-3.5e2`, true},
		{`"abc"`, true},
		{`""`, true},
		{`"a\"b"`, true},
		{`"` + strings.Repeat("x", MaxIDLen) + `"`, true},    // 64 characters between the quotes
		{`"` + strings.Repeat("é", MaxIDLen/2) + `"`, true},  // 64 bytes of UTF-8
		{`"` + strings.Repeat(`\n`, MaxIDLen/2) + `"`, true}, // escapes count as written
		{strings.Repeat("1", MaxIDLen), true},
		{`"` + strings.Repeat("x", MaxIDLen+1) + `"`, false},
		{`"` + strings.Repeat("é", MaxIDLen/2) + `x"`, false},
		{`"` + strings.Repeat(`\n`, MaxIDLen/2) + `x"`, false},
		{strings.Repeat("1", MaxIDLen+1), false},
		{``, false},
		{`null`, false},
		{`true`, false},
		{`{}`, false},
		{`[1]`, false},
		{`"abc`, false},
		{`"a"b"`, false},
		{`01`, false},
		{`1 `, false},
		{`"\x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			if got := ValidID([]byte(tt.raw)); got != tt.ok {
				t.Fatalf("ValidID(%q) = %v, want %v", tt.raw, got, tt.ok)
			}
		})
	}
}

func TestErrBadJSONText(t *testing.T) {
	if !strings.HasPrefix(ErrBadJSON.Error(), "frame: ") || errors.Is(ErrBadJSON, ErrBadFrame) {
		t.Fatalf("ErrBadJSON = %q", ErrBadJSON)
	}
}

func ExampleScanEnvelope() {
	msg := []byte(`{"type":"direct","id":7,"to":"bob","data":{"sdp":"v=0"}}`)
	var e Envelope
	if err := ScanEnvelope(msg, &e); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("type=%s id=%s to=%s valid_to=%v data=%s\n", e.Type, e.ID, e.To, ValidPeerID(e.To), e.Data)

	err := ScanEnvelope([]byte(`{"type":7}`), &e)
	fmt.Println(err)
	// Output:
	// type=direct id=7 to=bob valid_to=true data={"sdp":"v=0"}
	// frame: bad json
}
