package api

import "testing"

func TestParseRoomPath(t *testing.T) {
	for _, tc := range []struct {
		path, room string
		ok         bool
	}{
		{"/api/rooms/lobby", "lobby", true},
		{"/api/rooms/game%2F42%3Alobby", "game/42:lobby", true},
		{"/api/rooms/game%2f42", "game/42", true},
		{"/api/rooms/a.b_c-d", "a.b_c-d", true},
		{"/api/rooms/game/42", "", false},
		{"/api/rooms/", "", false},
		{"/api/rooms/a%zz", "", false},
		{"/api/rooms/a%20b", "", false},
		{"/api/rooms/%2F", "/", true},
	} {
		room, f := parseRoomPath(tc.path)
		if (f == nil) != tc.ok || room != tc.room {
			t.Errorf("parseRoomPath(%q) = %q, %v; want %q, ok %v", tc.path, room, f, tc.room, tc.ok)
		}
	}
}

func TestParseDisconnectDefaults(t *testing.T) {
	for _, tc := range []struct {
		body, peer, reason string
		code               int
	}{
		{`{"peer":"p"}`, "p", "disconnected", 4000},
		{`{"peer":"p","code":4999,"reason":""}`, "p", "", 4999},
		{`{"peer":"p","code":4321,"reason":"banned: spam","x":null}`, "p", "banned: spam", 4321},
		{`{"peer":"p","reason":"` + "\u00e9t\u00e9" + `"}`, "p", "été", 4000},
	} {
		peer, code, reason, f := parseDisconnect([]byte(tc.body))
		if f != nil || peer != tc.peer || code != tc.code || reason != tc.reason {
			t.Errorf("parseDisconnect(%s) = %q %d %q %v, want %q %d %q", tc.body, peer, code, reason, f, tc.peer, tc.code, tc.reason)
		}
	}
}

// TestDataRelayedVerbatim: data keeps its bytes, spaces and escapes included.
func TestDataRelayedVerbatim(t *testing.T) {
	data := `{ "a" : [1, 2.50, "\u00e9\n"], "b":null }`
	req, f := parsePublish([]byte(`{"room":"r","data":` + data + `}`))
	if f != nil || string(req.Data) != data {
		t.Fatalf("data = %q, %v; want %q", req.Data, f, data)
	}
}
