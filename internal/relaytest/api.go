package relaytest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// APIKey is a WSRELAY_API_KEY for tests; Start a server with
// "WSRELAY_API_KEY="+APIKey to turn the server API on.
const APIKey = "test-api-key-0123456789abcdef-0123"

// Call makes a server API call with APIKey, on the admin address when the
// server has one, and returns the status and the decoded JSON answer.
func (s *Server) Call(method, path, body string) (int, map[string]any) {
	s.T.Helper()
	return s.CallKey(APIKey, method, path, body)
}

// CallKey is Call with key as the bearer token (none when empty).
func (s *Server) CallKey(key, method, path, body string) (int, map[string]any) {
	s.T.Helper()
	base := s.Admin
	if base == "" {
		base = s.Base
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		s.T.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		s.T.Fatalf("%s %s: %d, answer not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

// GetAdmin requests path on the admin address and returns the status,
// headers and body.
func (s *Server) GetAdmin(path string) (int, http.Header, string) {
	s.T.Helper()
	resp, err := http.Get(s.Admin + path)
	if err != nil {
		s.T.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
