package frame

// Version is the binary header version this package reads and writes
// (docs/protocol.md section 4).
const Version = 1

// Binary ops, the second header byte.
const (
	BinDirect    byte = 1 // to one peer
	BinPublish   byte = 2 // to the members of a room
	BinBroadcast byte = 3 // to every connected peer
)

// Header is the typed header of a binary message:
//
//	version op ctype flags from_len from... to_len to... payload...
//
// From and To are sub-slices of the parsed message, valid as long as it is.
type Header struct {
	Op    byte // BinDirect, BinPublish or BinBroadcast
	CType byte // application content type, 0 = untyped
	Flags byte // opaque to the server, delivered unchanged
	// From is the sender's peer id; empty in client frames.
	From []byte
	// To is the recipient: a peer id (client direct) or a room (publish);
	// empty otherwise.
	To []byte
}

// ParseClientHeader parses the header of a client-to-server binary message
// into *h and returns the payload that follows it. It checks, in order, that
// the version is Version, the header is complete, the op is known, from_len
// is 0, and that to is a valid peer id for BinDirect, a valid room for
// BinPublish and empty for BinBroadcast. On failure it returns one of the
// ErrBinary* errors (all match ErrBadFrame) and leaves *h zero.
// It does not allocate or copy: h.To and the payload are sub-slices of msg.
func ParseClientHeader(msg []byte, h *Header) (payload []byte, err error) {
	*h = Header{}
	switch {
	case len(msg) == 0:
		return nil, ErrBinaryShort
	case msg[0] != Version:
		return nil, ErrBinaryVersion
	case len(msg) < 6:
		return nil, ErrBinaryShort
	case msg[1] < BinDirect || msg[1] > BinBroadcast:
		return nil, ErrBinaryOp
	case msg[4] != 0:
		return nil, ErrBinaryFromLen
	}
	end := 6 + int(msg[5])
	if len(msg) < end {
		return nil, ErrBinaryShort
	}
	to := msg[6:end:end]
	var ok bool
	switch msg[1] {
	case BinDirect:
		ok = ValidPeerID(to)
	case BinPublish:
		ok = ValidRoom(to)
	default:
		ok = len(to) == 0
	}
	if !ok {
		return nil, ErrBinaryTo
	}
	*h = Header{Op: msg[1], CType: msg[2], Flags: msg[3], To: to}
	return msg[end:], nil
}

// ParseServerHeader parses the header of a server-to-client binary message
// (the client's side of the protocol) into *h and returns the payload that
// follows it. It checks that the version is Version, the header is complete,
// the op is known, from is a valid peer id, and that to is a valid room for
// BinPublish and empty otherwise. Errors and aliasing are as for
// ParseClientHeader.
func ParseServerHeader(msg []byte, h *Header) (payload []byte, err error) {
	*h = Header{}
	switch {
	case len(msg) == 0:
		return nil, ErrBinaryShort
	case msg[0] != Version:
		return nil, ErrBinaryVersion
	case len(msg) < 6:
		return nil, ErrBinaryShort
	case msg[1] < BinDirect || msg[1] > BinBroadcast:
		return nil, ErrBinaryOp
	}
	fromEnd := 5 + int(msg[4])
	if len(msg) < fromEnd+1 {
		return nil, ErrBinaryShort
	}
	end := fromEnd + 1 + int(msg[fromEnd])
	if len(msg) < end {
		return nil, ErrBinaryShort
	}
	from := msg[5:fromEnd:fromEnd]
	if !ValidPeerID(from) {
		return nil, ErrBinaryFrom
	}
	to := msg[fromEnd+1 : end : end]
	if msg[1] == BinPublish && !ValidRoom(to) || msg[1] != BinPublish && len(to) != 0 {
		return nil, ErrBinaryTo
	}
	*h = Header{Op: msg[1], CType: msg[2], Flags: msg[3], From: from, To: to}
	return msg[end:], nil
}

// AppendServerHeader appends a server-to-client header to dst; the caller
// appends the payload. from is the sender's peer id; to is the room for
// BinPublish and empty otherwise. It does not check its arguments, except
// that from and to must each fit in 255 bytes (valid ids and rooms do): it
// panics otherwise.
func AppendServerHeader(dst []byte, op, ctype, flags byte, from, to string) []byte {
	dst = append(dst, Version, op, ctype, flags, fieldLen(from))
	dst = append(dst, from...)
	dst = append(dst, fieldLen(to))
	return append(dst, to...)
}

// AppendClientHeader appends a client-to-server header to dst (from_len 0);
// the caller appends the payload. to is the peer id for BinDirect, the room
// for BinPublish and empty for BinBroadcast. It panics if to is longer than
// 255 bytes.
func AppendClientHeader(dst []byte, op, ctype, flags byte, to string) []byte {
	dst = append(dst, Version, op, ctype, flags, 0, fieldLen(to))
	return append(dst, to...)
}

func fieldLen(s string) byte {
	if len(s) > 255 {
		panic("frame: binary header field longer than 255 bytes")
	}
	return byte(len(s))
}
