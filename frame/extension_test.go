package frame

import (
	"strings"
	"testing"
)

func TestNegotiateDeflate(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   bool
	}{
		{"no header", nil, false},
		{"empty header", []string{""}, false},
		{"bare offer (Firefox, Safari)", []string{"permessage-deflate"}, true},
		{"Chromium's offer", []string{"permessage-deflate; client_max_window_bits"}, true},
		{"gorilla's offer", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, true},
		{"every parameter", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=10"}, true},
		{"extension name in capitals", []string{"PerMessage-Deflate"}, true},
		{"no spaces", []string{"permessage-deflate;client_max_window_bits=15;server_no_context_takeover"}, true},
		{"tabs and spaces", []string{" permessage-deflate \t; \tclient_max_window_bits = 12 "}, true},
		{"quoted window size", []string{`permessage-deflate; client_max_window_bits="9"`}, true},
		{"client window 8", []string{"permessage-deflate; client_max_window_bits=8"}, true},

		{"other extension only", []string{"x-webkit-deflate-frame"}, false},
		{"other extension first", []string{"x-custom; a=1, permessage-deflate"}, true},
		{"split over two header lines", []string{"x-custom", "permessage-deflate; client_max_window_bits"}, true},
		{"empty list elements", []string{", ,permessage-deflate,"}, true},

		{"unknown parameter", []string{"permessage-deflate; foo"}, false},
		{"unknown parameter with value", []string{"permessage-deflate; mode=fast"}, false},
		{"duplicate parameter", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false},
		{"duplicate window size", []string{"permessage-deflate; client_max_window_bits=10; client_max_window_bits=11"}, false},
		{"value on a flag", []string{"permessage-deflate; server_no_context_takeover=1"}, false},
		{"server window without value", []string{"permessage-deflate; server_max_window_bits"}, false},
		{"server window below 15", []string{"permessage-deflate; server_max_window_bits=10"}, false},
		{"server window 15", []string{"permessage-deflate; server_max_window_bits=15"}, true},
		{"window 7", []string{"permessage-deflate; client_max_window_bits=7"}, false},
		{"window 16", []string{"permessage-deflate; client_max_window_bits=16"}, false},
		{"window with a leading zero", []string{"permessage-deflate; client_max_window_bits=09"}, false},
		{"window not a number", []string{"permessage-deflate; client_max_window_bits=big"}, false},
		{"quoted value with an escape", []string{`permessage-deflate; client_max_window_bits="1\0"`}, false},
		{"empty quoted value", []string{`permessage-deflate; client_max_window_bits=""`}, false},

		{"declined offer, acceptable fallback", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, true},
		{"two declined offers", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate; foo"}, false},

		{"missing name before parameter", []string{"; client_max_window_bits"}, false},
		{"empty parameter", []string{"permessage-deflate;"}, false},
		{"garbage after the offer", []string{"permessage-deflate @"}, false},
		{"malformed element after an acceptable offer", []string{"permessage-deflate, x=;"}, false},
		{"malformed second line", []string{"permessage-deflate", "x; =1"}, false},
		{"unterminated quote", []string{`permessage-deflate; client_max_window_bits="10`}, false},
		{"control character in a quote", []string{"permessage-deflate; client_max_window_bits=\"1\x010\""}, false},
		{"value missing after =", []string{"permessage-deflate; client_max_window_bits="}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NegotiateDeflate(tt.values); got != tt.want {
				t.Errorf("NegotiateDeflate(%q) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}

// TestDeflateResponseAccepted: the answer is itself an offer the server
// accepts, names both no_context_takeover parameters, and nothing else.
func TestDeflateResponseAccepted(t *testing.T) {
	if !NegotiateDeflate([]string{DeflateResponse}) {
		t.Fatalf("DeflateResponse %q does not parse as an acceptable offer", DeflateResponse)
	}
	for _, p := range []string{"server_no_context_takeover", "client_no_context_takeover"} {
		if !strings.Contains(DeflateResponse, p) {
			t.Errorf("DeflateResponse lacks %s", p)
		}
	}
	if strings.Contains(DeflateResponse, "window_bits") {
		t.Errorf("DeflateResponse names a window size: %q", DeflateResponse)
	}
}
