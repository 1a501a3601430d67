//go:build !race

package auth

import (
	"fmt"
	"testing"
)

// TestRoomsAllowsAllocs: checking a join against a rooms claim allocates
// nothing, whatever the claim's size and whether the room matches.
func TestRoomsAllowsAllocs(t *testing.T) {
	var patterns []string
	for i := range 200 {
		patterns = append(patterns, fmt.Sprintf("room:%03d", i), fmt.Sprintf("game:%03d:*", i))
	}
	r, err := ParseRooms(patterns)
	if err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 128)
	for i := range long {
		long[i] = 'g'
	}
	for _, room := range []string{"room:150", "game:007:lobby-with-a-long-name-past-32-bytes", "room:999", "zzz", string(long)} {
		b := []byte(room)
		want := naiveAllows(patterns, room)
		if n := testing.AllocsPerRun(100, func() {
			if r.Allows(b) != want {
				t.Fatalf("Allows(%q) != %v", room, want)
			}
		}); n != 0 {
			t.Errorf("Allows(%q): %v allocations, want 0", room, n)
		}
	}
}
