package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// BinaryTypes maps each allowed binary content type (the ctype byte of the
// binary header, docs/protocol.md section 4) to the largest payload, in bytes,
// accepted for it. A nil or empty BinaryTypes allows every type, limited only
// by MaxMessageBytes. Type 0 (untyped) is allowed only when listed.
//
// Its text form, used by WSRELAY_BINARY_TYPES and by String, is a
// comma-separated list of type:limit pairs, e.g. "1:65536,2:262144".
//
// A BinaryTypes is read-only after Load and safe for concurrent use.
type BinaryTypes map[byte]int

// Allows reports whether a binary frame of content type ctype whose payload
// (after the header) is payloadLen bytes long may be relayed.
func (b BinaryTypes) Allows(ctype byte, payloadLen int) bool {
	if len(b) == 0 {
		return true
	}
	limit, ok := b[ctype]
	return ok && payloadLen <= limit
}

// UnmarshalText parses the "type:limit,type:limit" form. An empty text means
// every type is allowed (a nil map). It rejects bad syntax, a type above 255,
// a type listed twice and a limit that is not positive.
func (b *BinaryTypes) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		*b = nil
		return nil
	}
	m := BinaryTypes{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		typ, limit, ok := strings.Cut(entry, ":")
		if !ok {
			return fmt.Errorf("entry %q: want type:limit", entry)
		}
		typ, limit = strings.TrimSpace(typ), strings.TrimSpace(limit)
		t, err := strconv.Atoi(typ)
		if err != nil {
			return fmt.Errorf("entry %q: type %q is not a number", entry, typ)
		}
		if t < 0 || t > 255 {
			return fmt.Errorf("entry %q: type %d out of range 0-255", entry, t)
		}
		l, err := strconv.Atoi(limit)
		if err != nil {
			return fmt.Errorf("entry %q: limit %q is not a number", entry, limit)
		}
		if l <= 0 {
			return fmt.Errorf("entry %q: limit must be positive, got %d", entry, l)
		}
		if _, dup := m[byte(t)]; dup {
			return fmt.Errorf("type %d listed twice", t)
		}
		m[byte(t)] = l
	}
	*b = m
	return nil
}

// String returns the text form, types in ascending order; "" when every type
// is allowed.
func (b BinaryTypes) String() string {
	if len(b) == 0 {
		return ""
	}
	types := make([]int, 0, len(b))
	for t := range b {
		types = append(types, int(t))
	}
	slices.Sort(types)
	var sb strings.Builder
	for i, t := range types {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(t))
		sb.WriteByte(':')
		sb.WriteString(strconv.Itoa(b[byte(t)]))
	}
	return sb.String()
}
