package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

var (
	// ErrClosed is returned by the Send methods once the connection is closed,
	// by either side. A *CloseError matches it with errors.Is.
	ErrClosed = errors.New("client: connection closed")

	// ErrNoWelcome is returned by Dial when the relay's first message is not
	// a welcome.
	ErrNoWelcome = errors.New("client: first message was not welcome")

	// ErrBadMessage is returned (wrapped) by Receive for a frame from the
	// relay that is not valid protocol: a text frame that is not a JSON object
	// with a string type, or a binary frame with an invalid header. The
	// connection stays open; Receive returns the frame in Message.Raw.
	ErrBadMessage = errors.New("client: malformed message from relay")
)

// HandshakeError is returned by Dial when the relay answers the upgrade
// request with an HTTP status other than 101 (docs/protocol.md section 1: 400,
// 401, 403, 429, 503).
type HandshakeError struct {
	StatusCode int
	Header     http.Header // response headers, e.g. Retry-After
	Body       string      // the start of the response body (at most 1 KiB)
}

// Error names the status and the relay's reason: the first line of Body,
// at most 200 bytes, with control characters replaced.
func (e *HandshakeError) Error() string {
	s := fmt.Sprintf("client: handshake refused: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if reason := e.reason(); reason != "" {
		s += ": " + reason
	}
	return s
}

// maxReasonLen bounds the part of Body that Error shows.
const maxReasonLen = 200

func (e *HandshakeError) reason() string {
	line, _, _ := strings.Cut(strings.TrimSpace(e.Body), "\n")
	line = strings.TrimSpace(line)
	if len(line) > maxReasonLen {
		line = strings.ToValidUTF8(line[:maxReasonLen], "") + "..."
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, line)
}

// CloseError is returned by Receive once the connection has ended. Code and
// Reason are those of the close frame the relay sent (4001 "replaced", 1001
// on shutdown, ...). Code is 1006 when the connection ended without a close
// frame (network error, CloseNow, close handshake timed out), and 1009 when
// a message from the relay exceeded Options.ReadLimit.
type CloseError struct {
	Code   int
	Reason string

	err error // the underlying read error, for 1006 and 1009
}

func (e *CloseError) Error() string {
	s := fmt.Sprintf("client: connection closed: %d", e.Code)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the read error that ended the connection without a close
// frame, or nil.
func (e *CloseError) Unwrap() error { return e.err }

// Is reports whether target is ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }
