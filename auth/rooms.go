package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wsrelay/wsrelay/frame"
)

// Rooms is the set of rooms a connection may join on the strength of its
// credential (docs/protocol.md section 11): every room, none, or those matched by
// the patterns of a JWT "rooms" claim. A join outside it needs a room token.
//
// The zero Rooms allows every room (auth none, telegram and key, and jwt
// without the claim). A Rooms is immutable once built and safe for
// concurrent use; copies share their patterns.
type Rooms struct {
	// set is nil for every room; otherwise the patterns, possibly none.
	set *roomSet
}

// roomSet holds a claim's patterns in two sorted string tables. Prefixes
// that another prefix covers, and names that a prefix covers, are dropped
// when the set is built, so at most one prefix can match a room.
type roomSet struct {
	names    table // exact room names
	prefixes table // prefixes, without their '*'
}

// table is a sorted list of distinct strings packed into one string, so that
// a set of any size costs the garbage collector two objects.
type table struct {
	data string
	ends []uint32 // ends[i] is the end of entry i in data
}

func (t *table) len() int { return len(t.ends) }

func (t *table) at(i int) string {
	start := uint32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.data[start:t.ends[i]]
}

// search returns the number of entries <= room. The string(room)
// conversions in comparisons do not allocate.
func (t *table) search(room []byte) int {
	lo, hi := 0, t.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.at(m) <= string(room) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func newTable(entries []string) table {
	t := table{data: strings.Join(entries, ""), ends: make([]uint32, len(entries))}
	end := uint32(0)
	for i, e := range entries {
		end += uint32(len(e))
		t.ends[i] = end
	}
	return t
}

// AllRooms allows every room: the zero Rooms.
func AllRooms() Rooms { return Rooms{} }

// NoRooms allows no room: joins need a room token
// (WSRELAY_JWT_REQUIRE_ROOMS without a claim, or an empty claim).
func NoRooms() Rooms { return Rooms{set: &roomSet{}} }

// ParseRooms builds the Rooms of a "rooms" claim. Each pattern is a room
// name (docs/protocol.md section 2), matched exactly, or a prefix of one followed
// by '*', matching every room that starts with the prefix ("game:42:*"
// matches "game:42:lobby"; "*" alone matches every room). An empty list
// allows no room. A pattern of any other form is an error that wraps
// ErrInvalid, since a claim the server cannot read must not silently grant
// or deny access.
func ParseRooms(patterns []string) (Rooms, error) {
	var names, prefixes []string
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if prefix != "" && !frame.ValidRoom([]byte(prefix)) {
				return Rooms{}, fmt.Errorf("%w: rooms claim: invalid pattern %q", ErrInvalid, p)
			}
			prefixes = append(prefixes, prefix)
			continue
		}
		if !frame.ValidRoom([]byte(p)) {
			return Rooms{}, fmt.Errorf("%w: rooms claim: invalid room %q", ErrInvalid, p)
		}
		names = append(names, p)
	}

	// Keep the shortest of prefixes that share a start: sorted, a prefix
	// comes right before the prefixes it covers.
	slices.Sort(prefixes)
	prefixes = slices.Compact(prefixes)
	kept := prefixes[:0]
	for _, p := range prefixes {
		if len(kept) == 0 || !strings.HasPrefix(p, kept[len(kept)-1]) {
			kept = append(kept, p)
		}
	}
	set := &roomSet{prefixes: newTable(kept)}

	slices.Sort(names)
	names = slices.Compact(names)
	names = slices.DeleteFunc(names, func(n string) bool { return set.prefixMatch([]byte(n)) })
	set.names = newTable(names)
	return Rooms{set: set}, nil
}

// prefixMatch reports whether a prefix of s matches room. Prefixes are
// sorted and none covers another, so the only candidate is the greatest
// prefix <= room: every string between a prefix p and room starts with p.
func (s *roomSet) prefixMatch(room []byte) bool {
	i := s.prefixes.search(room)
	if i == 0 {
		return false
	}
	p := s.prefixes.at(i - 1)
	return len(room) >= len(p) && string(room[:len(p)]) == p
}

// Allows reports whether the credential alone lets its peer join room. It
// costs O(log n) string comparisons for n patterns and allocates nothing.
func (r Rooms) Allows(room []byte) bool {
	if r.set == nil {
		return true
	}
	if i := r.set.names.search(room); i > 0 && r.set.names.at(i-1) == string(room) {
		return true
	}
	return r.set.prefixMatch(room)
}

// All reports whether r allows every room, as the zero Rooms does.
func (r Rooms) All() bool { return r.set == nil }

// Patterns returns r's patterns in sorted order, names then prefixes (with
// their '*'), as they take effect: a pattern covered by another is left out.
// It is nil for AllRooms and empty for NoRooms. For logs and tests.
func (r Rooms) Patterns() []string {
	if r.set == nil {
		return nil
	}
	out := make([]string, 0, r.set.names.len()+r.set.prefixes.len())
	for i := range r.set.names.len() {
		out = append(out, r.set.names.at(i))
	}
	for i := range r.set.prefixes.len() {
		out = append(out, r.set.prefixes.at(i)+"*")
	}
	return out
}
