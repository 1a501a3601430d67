package config

import "strings"

// Error is a configuration error: the variable it concerns and what is wrong
// with it. Its text is one line, "WSRELAY_NAME: reason", and never contains
// the value of a secret.
type Error struct {
	// Var is the variable's full name, e.g. "WSRELAY_QUEUE_SIZE".
	Var string
	// Err says what is wrong.
	Err error
}

func (e *Error) Error() string {
	return e.Var + ": " + oneLine(e.Err.Error())
}

// Unwrap returns the underlying error (for example an *fs.PathError for an
// unreadable key file).
func (e *Error) Unwrap() error { return e.Err }

// oneLine replaces line breaks so a message always fits on one line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
