package frame

import (
	"encoding/json"
	"strconv"
	"testing"
)

func TestParseCount(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"01", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{`"5"`, 0, false},
		{"null", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseCount([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Fatalf("ParseCount(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseCount checks ParseCount against strconv.ParseUint on the
// integers JSON allows.
func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"0", "42", "18446744073709551615", "18446744073709551616", "-0", "00", "1e2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := ParseCount(b)
		ref, err := strconv.ParseUint(string(b), 10, 64)
		refOK := err == nil && json.Valid(b) && (len(b) == 1 || b[0] != '0') && b[0] != '+'
		if ok != refOK || (ok && n != ref) {
			t.Fatalf("ParseCount(%q) = %d, %v; strconv says %d, %v", b, n, ok, ref, refOK)
		}
	})
}

func TestAppendResumeFields(t *testing.T) {
	welcome := AppendWelcome(nil, "p1", "wsrelay/dev", 25000, 60000, 65536, 256)
	tests := []struct {
		name    string
		resumed bool
		rooms   []string
		want    map[string]any
	}{
		{"new session", false, nil, map[string]any{"resume": "tok", "resumed": false}},
		{"resumed", true, []string{"a", "b/c"}, map[string]any{"resume": "tok", "resumed": true, "rooms": []any{"a", "b/c"}, "missed": 3.0}},
		{"resumed without rooms", true, nil, map[string]any{"resume": "tok", "resumed": true, "rooms": []any{}, "missed": 3.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendResumeFields(append([]byte(nil), welcome...), "tok", tt.resumed, tt.rooms, 3)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if m["peer"] != "p1" || m["type"] != "welcome" {
				t.Fatalf("welcome fields lost: %s", b)
			}
			for k, v := range tt.want {
				if got, _ := json.Marshal(m[k]); string(got) != mustJSON(v) {
					t.Errorf("%s = %s, want %s", k, got, mustJSON(v))
				}
			}
			if _, has := m["missed"]; has != tt.resumed {
				t.Errorf("missed present = %v in %s", has, b)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
