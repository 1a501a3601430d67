package frame

import "strings"

// DeflateResponse is the Sec-WebSocket-Extensions value with which a server
// accepts a permessage-deflate offer (RFC 7692): no context takeover in
// either direction, so that every message is compressed and inflated on its
// own and an idle connection holds no compression state. Window sizes are
// left at their defaults (15 bits).
const DeflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// NegotiateDeflate reports whether the Sec-WebSocket-Extensions header
// values of an upgrade request (all of its lines, in order) hold a
// permessage-deflate offer that the server can accept by answering with
// DeflateResponse. Offers are tried in the client's order of preference, and
// the first acceptable one wins (RFC 7692 section 5).
//
// An offer is declined, and the next one tried, when it has a parameter
// RFC 7692 does not define, a parameter twice, a value where none is
// allowed or none where one is required, a window size that is not a
// decimal 8 to 15, or a server_max_window_bits below 15 (the compressor
// always uses the full 32 KiB window). A header that does not follow the
// extension-list grammar of RFC 6455 section 9.1 declines every offer.
// Declining never fails the upgrade: the connection just goes without the
// extension. Other extensions are ignored. NegotiateDeflate does not
// allocate.
func NegotiateDeflate(values []string) bool {
	found := false
	for _, v := range values {
		p := extParser{s: v}
		for more := true; more; {
			var ok, valid bool
			ok, more, valid = p.extension()
			if !valid {
				return false
			}
			found = found || ok
		}
	}
	return found
}

// extParser walks one Sec-WebSocket-Extensions value:
//
//	extension-list  = 1#extension
//	extension       = extension-token *( ";" extension-param )
//	extension-param = token [ "=" ( token | quoted-string ) ]
//
// with optional white space around the separators and empty list elements
// allowed, as in every HTTP list (RFC 9110 section 5.6.1).
type extParser struct {
	s string
	i int
}

// extension parses the next extension of the list and reports whether it is
// an acceptable permessage-deflate offer, whether another element follows,
// and whether the element was well-formed.
func (p *extParser) extension() (acceptable, more, valid bool) {
	p.space()
	for p.i < len(p.s) && p.s[p.i] == ',' { // empty elements
		p.i++
		p.space()
	}
	if p.i == len(p.s) {
		return false, false, true
	}
	name := p.token()
	if name == "" {
		return false, false, false
	}
	var o deflateOffer
	isDeflate := strings.EqualFold(name, "permessage-deflate")
	acceptable = isDeflate
	for {
		p.space()
		if p.i == len(p.s) {
			return acceptable, false, true
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			return acceptable, true, true
		case ';':
			p.i++
		default:
			return false, false, false
		}
		p.space()
		param := p.token()
		if param == "" {
			return false, false, false
		}
		p.space()
		value, hasValue := "", false
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			p.space()
			var ok bool
			if value, ok = p.value(); !ok {
				return false, false, false
			}
			hasValue = true
		}
		if isDeflate && !o.param(param, value, hasValue) {
			acceptable = false
		}
	}
}

// space skips optional white space.
func (p *extParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// token returns the token at the position, or "" when there is none.
func (p *extParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value returns a parameter value: a token, or the contents of a
// quoted-string that holds a token, which is all RFC 6455 section 9.1
// allows in one. A quoted value is returned only when it needs no
// unescaping (an escaped token character is legal but never sent), so that
// parsing does not allocate; an escape makes it "" and the caller declines.
func (p *extParser) value() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		v := p.token()
		return v, v != ""
	}
	p.i++
	start := p.i
	escaped := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			if escaped {
				return "", true
			}
			return v, true
		case c == '\\':
			escaped = true
			p.i += 2
			continue
		case c < 0x20 && c != '\t' || c == 0x7F:
			return "", false
		}
		p.i++
	}
	return "", false // unterminated
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110
// section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// deflateOffer collects the parameters of one permessage-deflate offer
// (RFC 7692 section 7.1) to catch duplicates.
type deflateOffer struct {
	serverNoTakeover, clientNoTakeover bool
	serverBits, clientBits             bool
}

// param checks one parameter of the offer and reports whether the offer
// stays acceptable with it.
func (o *deflateOffer) param(name, value string, hasValue bool) bool {
	switch {
	case strings.EqualFold(name, "server_no_context_takeover"):
		if o.serverNoTakeover || hasValue {
			return false
		}
		o.serverNoTakeover = true
	case strings.EqualFold(name, "client_no_context_takeover"):
		if o.clientNoTakeover || hasValue {
			return false
		}
		o.clientNoTakeover = true
	case strings.EqualFold(name, "server_max_window_bits"):
		// The client asks the server to compress with a smaller window:
		// compress/flate cannot, so only 15 (the default) is accepted.
		if o.serverBits || !hasValue || windowBits(value) != 15 {
			return false
		}
		o.serverBits = true
	case strings.EqualFold(name, "client_max_window_bits"):
		// The client may limit its own window: any size inflates.
		if o.clientBits || hasValue && windowBits(value) == 0 {
			return false
		}
		o.clientBits = true
	default:
		return false
	}
	return true
}

// windowBits returns the window size a parameter value names, 8 to 15, or
// 0 when it names none: it must be a decimal without leading zeros
// (RFC 7692 section 7.1.2).
func windowBits(v string) int {
	switch v {
	case "8":
		return 8
	case "9":
		return 9
	case "10", "11", "12", "13", "14", "15":
		return 10 + int(v[1]-'0')
	}
	return 0
}
