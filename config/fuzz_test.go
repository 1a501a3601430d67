package config

import (
	"reflect"
	"testing"
)

// FuzzBinaryTypes checks that UnmarshalText never panics and that whatever it
// accepts survives a String round trip and obeys the documented bounds.
func FuzzBinaryTypes(f *testing.F) {
	for _, s := range []string{"", "1:65536,2:262144", "0:1", "255:1", "256:1", "1:0", "1:1,1:2", " 3 : 4 ", ",", "1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b BinaryTypes
		if err := b.UnmarshalText([]byte(s)); err != nil {
			return
		}
		for typ, limit := range b {
			if limit <= 0 {
				t.Fatalf("UnmarshalText(%q) accepted limit %d for type %d", s, limit, typ)
			}
		}
		var back BinaryTypes
		if err := back.UnmarshalText([]byte(b.String())); err != nil {
			t.Fatalf("UnmarshalText(%q) of String() of %q: %v", b.String(), s, err)
		}
		if len(b) == 0 && len(back) == 0 {
			return
		}
		if !reflect.DeepEqual(back, b) {
			t.Fatalf("round trip of %q: got %v, want %v", s, back, b)
		}
	})
}
