package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRooms(t *testing.T) {
	long := strings.Repeat("r", 128)
	for _, tc := range []struct {
		name     string
		patterns []string
		allow    []string
		deny     []string
	}{
		{"names", []string{"lobby", "game:42"}, []string{"lobby", "game:42"}, []string{"lobby2", "lobb", "game:4", "game:42:x", "Lobby"}},
		{"prefix", []string{"game:42:*"}, []string{"game:42:lobby", "game:42:", "game:42:a/b"}, []string{"game:42", "game:4", "game:421:x", "game:43:lobby"}},
		{"prefix matches the bare prefix", []string{"chat*"}, []string{"chat", "chat:1", "chatter"}, []string{"cha", "chap"}},
		{"star alone", []string{"*"}, []string{"a", long, "game:42:lobby"}, nil},
		{"names and prefixes", []string{"b", "a:*", "c:*", "d"}, []string{"a:1", "b", "c:", "d"}, []string{"a", "b:1", "c", "a", "e", "0", "a;"}},
		{"covered prefix", []string{"game:42:*", "game:*"}, []string{"game:1", "game:42:x"}, []string{"gam", "x"}},
		{"neighbouring prefixes", []string{"a*", "ab:*", "b*"}, []string{"a", "ab:1", "azz", "b", "bz"}, []string{"c", "0"}},
		{"longest name", []string{long}, []string{long}, []string{long[:127]}},
		{"longest prefix", []string{long + "*"}, []string{long}, []string{long[:127]}},
		{"empty claim", []string{}, nil, []string{"a", "lobby"}},
		{"duplicates", []string{"a", "a", "b*", "b*"}, []string{"a", "b1"}, []string{"c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRooms(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if r.All() {
				t.Fatal("a parsed claim reports All")
			}
			for _, room := range tc.allow {
				if !r.Allows([]byte(room)) {
					t.Errorf("%q does not allow %q", tc.patterns, room)
				}
			}
			for _, room := range tc.deny {
				if r.Allows([]byte(room)) {
					t.Errorf("%q allows %q", tc.patterns, room)
				}
			}
		})
	}
}

func TestRoomsAllAndNone(t *testing.T) {
	for _, room := range []string{"a", "lobby", "game:42:x"} {
		if !AllRooms().Allows([]byte(room)) || !(Rooms{}).Allows([]byte(room)) {
			t.Errorf("AllRooms does not allow %q", room)
		}
		if NoRooms().Allows([]byte(room)) {
			t.Errorf("NoRooms allows %q", room)
		}
	}
	if !AllRooms().All() || NoRooms().All() {
		t.Error("All() wrong")
	}
	if AllRooms().Patterns() != nil || NoRooms().Patterns() == nil || len(NoRooms().Patterns()) != 0 {
		t.Errorf("Patterns: all %q, none %q", AllRooms().Patterns(), NoRooms().Patterns())
	}
}

// TestRoomsPatterns checks what takes effect: duplicates and patterns that
// another prefix covers are dropped.
func TestRoomsPatterns(t *testing.T) {
	r, err := ParseRooms([]string{"game:42:lobby", "z", "game:*", "game:42:*", "a", "z", "gamer", "game:*"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "gamer", "z", "game:*"}
	if got := r.Patterns(); !slices.Equal(got, want) {
		t.Errorf("Patterns() = %q, want %q", got, want)
	}
	r, _ = ParseRooms([]string{"a", "b:*", "*"})
	if got := r.Patterns(); !slices.Equal(got, []string{"*"}) {
		t.Errorf("with *: Patterns() = %q", got)
	}
}

func TestParseRoomsInvalid(t *testing.T) {
	for _, p := range []string{
		"", "a b", "a*b", "**", "*a", "game:*:lobby", "room?", "é", strings.Repeat("r", 129),
		strings.Repeat("r", 129) + "*", "a\x00", "ok*\n",
	} {
		_, err := ParseRooms([]string{"lobby", p})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("pattern %q: err %v, want ErrInvalid", p, err)
		}
	}
}

// naiveAllows is the reference for Allows: a linear scan over the patterns.
func naiveAllows(patterns []string, room string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(room, prefix) {
				return true
			}
		} else if p == room {
			return true
		}
	}
	return false
}

func BenchmarkRoomsAllows(b *testing.B) {
	patterns := []string{"lobby", "game:42:*", "chat:*", "team:red", "team:blue", "dm:alice:*", "dm:bob:*"}
	r, err := ParseRooms(patterns)
	if err != nil {
		b.Fatal(err)
	}
	rooms := [][]byte{[]byte("game:42:lobby"), []byte("team:blue"), []byte("dm:carol:1"), []byte("zzz")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Allows(rooms[i%len(rooms)])
		i++
	}
}
