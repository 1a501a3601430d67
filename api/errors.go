package api

import "net/http"

// code is an error code of docs/protocol.md section 3, the "error" of a failed
// call's answer.
type code string

// The codes the API answers with.
const (
	codeBadJSON      code = "bad_json"       // the body is not a JSON object (or not UTF-8)
	codeBadRequest   code = "bad_request"    // a field is missing or invalid; wrong method; body too large
	codeUnknownType  code = "unknown_type"   // no such call
	codePeerNotFound code = "peer_not_found" // direct or disconnect to a peer no node holds
	codeNotMember    code = "not_member"     // a room without members
	codeForbidden    code = "forbidden"      // missing or wrong API key
)

// failure is a refused call: its HTTP status, code and message.
type failure struct {
	status  int
	code    code
	message string
}

var (
	errUnauthorized = &failure{http.StatusUnauthorized, codeForbidden, "missing or wrong API key"}
	errUnknownCall  = &failure{http.StatusNotFound, codeUnknownType, "unknown API call"}
	errBadJSON      = &failure{http.StatusBadRequest, codeBadJSON, "body is not a JSON object"}
	errPeerNotFound = &failure{http.StatusNotFound, codePeerNotFound, "no such peer"}
	errEmptyRoom    = &failure{http.StatusNotFound, codeNotMember, "room has no members"}
)

// badField is the failure of a missing or invalid field.
func badField(msg string) *failure {
	return &failure{http.StatusBadRequest, codeBadRequest, msg}
}
