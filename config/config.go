package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Prefix starts the name of every variable wsrelay reads.
const Prefix = "WSRELAY_"

// Bounds checked by Validate.
const (
	MinMessageBytes = 125      // smallest WSRELAY_MAX_MESSAGE_BYTES
	MaxMessageBytes = 64 << 20 // largest WSRELAY_MAX_MESSAGE_BYTES (64 MiB)
	MaxQueueSize    = 65536    // largest WSRELAY_QUEUE_SIZE
	MinAPIKeyLen    = 32       // shortest WSRELAY_API_KEY, in bytes
	// MinStallTimeout is the smallest WSRELAY_STALL_TIMEOUT.
	MinStallTimeout = 100 * time.Millisecond
)

// masked stands for a secret that is set.
const masked = "******"

// Config is wsrelay's whole configuration, parsed once from the environment by
// Load. Each field's env tag is its variable's name without the WSRELAY_
// prefix; docs/protocol.md section 7 is the reference for names, defaults and
// meanings, and fields are in its order. A Config is a plain value: copy it
// freely and do not mutate it once servers are running (its slice and map are
// shared by copies).
type Config struct {
	// Listener and event loop.
	Addr string `env:"ADDR" envDefault:":8080"` // host:port to listen on
	// AdminAddr, when set, is a second listener for /metrics, /stats and
	// the server API, which then leave Addr (docs/protocol.md section 12).
	AdminAddr string `env:"ADMIN_ADDR"`
	// APIKey turns the server API on; calls must carry it as a bearer
	// token. A secret: at least MinAPIKeyLen bytes.
	APIKey  string `env:"API_KEY"`
	Workers int    `env:"WORKERS"` // event-loop pollers; default GOMAXPROCS - 1, at least 1

	// Connection limits.
	MaxClients      int           `env:"MAX_CLIENTS" envDefault:"100000"`      // open connections at most
	MaxConnsPerIP   int           `env:"MAX_CONNS_PER_IP" envDefault:"0"`      // per client IP; 0 = off
	MaxMessageBytes int           `env:"MAX_MESSAGE_BYTES" envDefault:"65536"` // largest frame payload accepted
	PingInterval    time.Duration `env:"PING_INTERVAL" envDefault:"25s"`       // server ping period
	ClientTimeout   time.Duration `env:"CLIENT_TIMEOUT" envDefault:"60s"`      // silence before close
	QueueSize       int           `env:"QUEUE_SIZE" envDefault:"256"`          // frames per send queue
	RateMsgs        int           `env:"RATE_MSGS" envDefault:"100"`           // messages/s per connection; 0 = off
	RateBurst       int           `env:"RATE_BURST" envDefault:"200"`          // burst for RateMsgs

	// Routing policy.
	AllowBroadcast  bool        `env:"ALLOW_BROADCAST" envDefault:"false"`
	AllowedOrigins  []string    `env:"ALLOWED_ORIGINS"` // lowercased origins; empty = same origin only; "*" = any
	MaxRoomsPerPeer int         `env:"MAX_ROOMS_PER_PEER" envDefault:"64"`
	MaxRoomPeers    int         `env:"MAX_ROOM_PEERS" envDefault:"0"` // 0 = off
	BinaryTypes     BinaryTypes `env:"BINARY_TYPES"`                  // nil = every type allowed

	// Process.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"` // drain time on SIGTERM
	Echo            bool          `env:"ECHO" envDefault:"false"`           // serve /echo
	Demo            bool          `env:"DEMO" envDefault:"false"`           // serve / and /wsrelay.js
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`       // debug, info, warn, error
	LogFormat       string        `env:"LOG_FORMAT" envDefault:"text"`      // text, json

	// Authentication.
	Auth             string `env:"AUTH" envDefault:"none"` // none, jwt, telegram, key
	JWTSecret        string `env:"JWT_SECRET"`             // secret: HMAC key (HS256/384/512)
	JWTPublicKeyFile string `env:"JWT_PUBLIC_KEY_FILE"`    // PEM public key (RS*, ES*, EdDSA)
	JWTAudience      string `env:"JWT_AUDIENCE"`           // required aud when set
	JWTIssuer        string `env:"JWT_ISSUER"`             // required iss when set
	// JWTRequireRooms: a peer whose credential carries no rooms claim may
	// join rooms only with room tokens (docs/protocol.md section 11).
	JWTRequireRooms  bool          `env:"JWT_REQUIRE_ROOMS" envDefault:"false"`
	TelegramBotToken string        `env:"TELEGRAM_BOT_TOKEN"` // secret: signs Mini App initData
	TelegramMaxAge   time.Duration `env:"TELEGRAM_MAX_AGE" envDefault:"24h"`

	// TLS (both or neither) and clustering.
	TLSCertFile string `env:"TLS_CERT_FILE"`
	TLSKeyFile  string `env:"TLS_KEY_FILE"`
	NATSURL     string `env:"NATS_URL"` // secret in part: may carry user:password or a token
	NodeID      string `env:"NODE_ID"`  // this node's id in the cluster; empty = random
	NATSPrefix  string `env:"NATS_SUBJECT_PREFIX" envDefault:"wsrelay"`

	// Flow control (docs/protocol.md section 9): a recipient that keeps up may
	// pause a bursting sender for at most StallTimeout per backlog.
	FlowControl  bool          `env:"FLOW_CONTROL" envDefault:"true"` // false: drop as in version 1
	StallTimeout time.Duration `env:"STALL_TIMEOUT" envDefault:"1s"`  // at least MinStallTimeout
	// ResumeWindow is how long a session outlives a connection that ended
	// without a close for good (docs/protocol.md section 10); 0 turns resume off.
	ResumeWindow time.Duration `env:"RESUME_WINDOW" envDefault:"30s"`
	// Compression (docs/protocol.md section 13): permessage-deflate accepted
	// when a client offers it; messages of at least CompressionMinBytes
	// go out compressed to the clients that negotiated it.
	Compression         bool `env:"COMPRESSION" envDefault:"false"`
	CompressionMinBytes int  `env:"COMPRESSION_MIN_BYTES" envDefault:"512"`
}

// Load parses the WSRELAY_* variables out of environ, a list of "KEY=value"
// strings like os.Environ(), and validates the result. It never reads the
// process environment itself. A variable that is unset or empty takes its
// default. LogLevel, LogFormat and Auth are matched case-insensitively.
//
// On failure it returns the zero Config and an *Error naming the first bad
// variable.
func Load(environ []string) (Config, error) {
	c := Config{Workers: defaultWorkers(runtime.GOMAXPROCS(0))} // env only overwrites it when WSRELAY_WORKERS is set
	err := env.ParseWithOptions(&c, env.Options{
		Environment: env.ToMap(environ),
		Prefix:      Prefix,
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeFor[int]():           parseInt,
			reflect.TypeFor[bool]():          parseBool,
			reflect.TypeFor[time.Duration](): parseDuration,
			reflect.TypeFor[[]string]():      parseList,
		},
	})
	if err != nil {
		return Config{}, envError(err)
	}
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.Auth = strings.ToLower(strings.TrimSpace(c.Auth))
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func parseInt(s string) (any, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("integer %q out of range", s)
	}
	if err != nil {
		return nil, fmt.Errorf("invalid integer %q", s)
	}
	return n, nil
}

func parseBool(s string) (any, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid boolean %q (want true or false)", s)
	}
	return b, nil
}

func parseDuration(s string) (any, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid duration %q (want e.g. 250ms, 25s, 1h)", s)
	}
	return d, nil
}

// parseList splits a comma-separated list, trims spaces and drops empty items.
// Origins are case-insensitive, and browsers send them in lower case.
func parseList(s string) (any, error) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, strings.ToLower(item))
		}
	}
	return out, nil
}

// envError turns an error from caarlos0/env into an *Error naming the first
// variable that failed.
func envError(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var (
		pe  env.ParseError
		npe env.NoParserError
		vns env.VarIsNotSetError
		eve env.EmptyVarError
		lfe env.LoadFileContentError
	)
	switch {
	case errors.As(err, &pe):
		inner := pe.Err
		var pve env.ParseValueError
		if errors.As(inner, &pve) {
			inner = errors.New(pve.Msg)
		}
		return &Error{Var: varName(pe.Name), Err: inner}
	case errors.As(err, &npe):
		return &Error{Var: varName(npe.Name), Err: fmt.Errorf("no parser for type %s", npe.Type)}
	case errors.As(err, &vns):
		return &Error{Var: vns.Key, Err: errors.New("required but not set")}
	case errors.As(err, &eve):
		return &Error{Var: eve.Key, Err: errors.New("must not be empty")}
	case errors.As(err, &lfe):
		return &Error{Var: lfe.Key, Err: lfe.Err}
	}
	return &Error{Var: Prefix + "*", Err: err}
}

// varName maps a Config field name to its variable's full name.
func varName(field string) string {
	if f, ok := reflect.TypeFor[Config]().FieldByName(field); ok {
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			return Prefix + key
		}
	}
	return Prefix + strings.ToUpper(field)
}

// Validate checks every field's range and the consistency of related fields,
// in the order of docs/protocol.md section 7, and returns an *Error for the first
// problem. It checks that files named by the configuration (JWT public key,
// TLS certificate and key) can be opened, but not what they contain.
func (c Config) Validate() error {
	bad := func(name, format string, args ...any) error {
		return &Error{Var: Prefix + name, Err: fmt.Errorf(format, args...)}
	}
	between := func(name string, v, lo, hi int) error {
		if v < lo || v > hi {
			return bad(name, "must be between %d and %d, got %d", lo, hi, v)
		}
		return nil
	}
	atLeast := func(name string, v, lo int) error {
		switch {
		case v >= lo:
			return nil
		case v < 0:
			return bad(name, "must not be negative, got %d", v)
		default:
			return bad(name, "must be at least %d, got %d", lo, v)
		}
	}
	positive := func(name string, d time.Duration) error {
		if d <= 0 {
			return bad(name, "must be positive, got %s", d)
		}
		return nil
	}

	if err := checkAddr(c.Addr); err != nil {
		return &Error{Var: Prefix + "ADDR", Err: err}
	}
	if c.AdminAddr != "" {
		if err := checkAddr(c.AdminAddr); err != nil {
			return &Error{Var: Prefix + "ADMIN_ADDR", Err: err}
		}
		if c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
			return bad("ADMIN_ADDR", "must differ from WSRELAY_ADDR, both are %q", c.Addr)
		}
	}
	// The key's length only: its value is a secret and never quoted.
	if c.APIKey != "" && len(c.APIKey) < MinAPIKeyLen {
		return bad("API_KEY", "must be at least %d bytes, got %d", MinAPIKeyLen, len(c.APIKey))
	}

	errs := []error{
		atLeast("WORKERS", c.Workers, 1),
		atLeast("MAX_CLIENTS", c.MaxClients, 1),
		atLeast("MAX_CONNS_PER_IP", c.MaxConnsPerIP, 0),
		between("MAX_MESSAGE_BYTES", c.MaxMessageBytes, MinMessageBytes, MaxMessageBytes),
		positive("PING_INTERVAL", c.PingInterval),
		positive("CLIENT_TIMEOUT", c.ClientTimeout),
		between("QUEUE_SIZE", c.QueueSize, 1, MaxQueueSize),
		atLeast("RATE_MSGS", c.RateMsgs, 0),
		atLeast("RATE_BURST", c.RateBurst, 0),
	}
	if err := firstNonNil(errs); err != nil {
		return err
	}
	if c.ClientTimeout <= c.PingInterval {
		// The pong to a ping comes back after the ping: with a timeout no
		// longer than the interval, every idle, healthy client is closed.
		return bad("CLIENT_TIMEOUT", "must be longer than WSRELAY_PING_INTERVAL (%s), got %s: idle clients would be closed before they answer a ping", c.PingInterval, c.ClientTimeout)
	}
	if c.RateMsgs > 0 && c.RateBurst < 1 {
		return bad("RATE_BURST", "must be at least 1 when WSRELAY_RATE_MSGS is not 0, got %d", c.RateBurst)
	}
	for _, o := range c.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return &Error{Var: Prefix + "ALLOWED_ORIGINS", Err: err}
		}
	}
	if err := firstNonNil([]error{
		atLeast("MAX_ROOMS_PER_PEER", c.MaxRoomsPerPeer, 1),
		atLeast("MAX_ROOM_PEERS", c.MaxRoomPeers, 0),
	}); err != nil {
		return err
	}
	for t, limit := range c.BinaryTypes {
		if limit <= 0 {
			return bad("BINARY_TYPES", "limit for type %d must be positive, got %d", t, limit)
		}
	}
	if c.StallTimeout < MinStallTimeout {
		return bad("STALL_TIMEOUT", "must be at least %s, got %s", MinStallTimeout, c.StallTimeout)
	}
	if c.ShutdownTimeout < 0 {
		return bad("SHUTDOWN_TIMEOUT", "must not be negative, got %s", c.ShutdownTimeout)
	}
	if c.ResumeWindow < 0 {
		return bad("RESUME_WINDOW", "must not be negative, got %s", c.ResumeWindow)
	}
	if _, ok := parseLevel(c.LogLevel); !ok {
		return bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("LOG_FORMAT", "must be text or json, got %q", c.LogFormat)
	}

	// A JWT key verifies connection tokens (auth jwt) and room tokens (every
	// mode), so "only one key" holds in every mode.
	if c.JWTSecret != "" && c.JWTPublicKeyFile != "" {
		return bad("JWT_SECRET", "set only one of WSRELAY_JWT_SECRET and WSRELAY_JWT_PUBLIC_KEY_FILE")
	}
	hasJWTKey := c.JWTSecret != "" || c.JWTPublicKeyFile != ""
	switch c.Auth {
	case "none", "key":
	case "jwt":
		if !hasJWTKey {
			return bad("JWT_SECRET", "WSRELAY_AUTH=jwt needs WSRELAY_JWT_SECRET or WSRELAY_JWT_PUBLIC_KEY_FILE")
		}
	case "telegram":
		if c.TelegramBotToken == "" {
			return bad("TELEGRAM_BOT_TOKEN", "WSRELAY_AUTH=telegram needs the bot token")
		}
	default:
		return bad("AUTH", "must be none, jwt, telegram or key, got %q", c.Auth)
	}
	if c.JWTRequireRooms && !hasJWTKey {
		// Without a key no room token can be checked, so no peer could join a room.
		return bad("JWT_REQUIRE_ROOMS", "needs WSRELAY_JWT_SECRET or WSRELAY_JWT_PUBLIC_KEY_FILE to check room tokens")
	}
	if c.JWTPublicKeyFile != "" {
		if err := readable(c.JWTPublicKeyFile); err != nil {
			return &Error{Var: Prefix + "JWT_PUBLIC_KEY_FILE", Err: err}
		}
	}
	if err := positive("TELEGRAM_MAX_AGE", c.TelegramMaxAge); err != nil {
		return err
	}

	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return bad("TLS_KEY_FILE", "must be set when WSRELAY_TLS_CERT_FILE is set")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		return bad("TLS_CERT_FILE", "must be set when WSRELAY_TLS_KEY_FILE is set")
	}
	if c.TLSCertFile != "" {
		if err := readable(c.TLSCertFile); err != nil {
			return &Error{Var: Prefix + "TLS_CERT_FILE", Err: err}
		}
		if err := readable(c.TLSKeyFile); err != nil {
			return &Error{Var: Prefix + "TLS_KEY_FILE", Err: err}
		}
	}

	if err := checkNATSURL(c.NATSURL); err != nil {
		return &Error{Var: Prefix + "NATS_URL", Err: err}
	}
	if c.NodeID != "" && !validToken(c.NodeID) {
		return bad("NODE_ID", "must be 1 to %d letters, digits, '_' or '-', got %q", MaxNodeIDLen, c.NodeID)
	}
	for tok := range strings.SplitSeq(c.NATSPrefix, ".") {
		if !validToken(tok) {
			return bad("NATS_SUBJECT_PREFIX", "must be dot-separated tokens of letters, digits, '_' or '-', got %q", c.NATSPrefix)
		}
	}
	return atLeast("COMPRESSION_MIN_BYTES", c.CompressionMinBytes, 0)
}

// checkAddr accepts host:port with any host: empty (every interface), a
// name or an IP.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port must be a number 0-65535, got %q", port)
	}
	return nil
}

// MaxNodeIDLen is the longest WSRELAY_NODE_ID.
const MaxNodeIDLen = 64

// validToken reports whether s is a safe NATS subject token: 1 to
// MaxNodeIDLen letters, digits, '_' or '-'.
func validToken(s string) bool {
	if s == "" || len(s) > MaxNodeIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

func firstNonNil(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkOrigin accepts "*" or a browser origin, scheme://host[:port], with
// nothing after the host.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an origin (want scheme://host[:port] or *)", o)
	}
	if u.Path == "/" {
		return fmt.Errorf("%q is not an origin: remove the trailing slash", o)
	}
	return nil
}

// readable reports whether path names a file wsrelay can open for reading.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

// checkNATSURL accepts "" or a comma-separated list of NATS server URLs, with
// or without scheme. Its messages never quote the URL, which may hold
// credentials.
func checkNATSURL(s string) error {
	if s == "" {
		return nil
	}
	for i, part := range strings.Split(s, ",") {
		u, err := parseNATSURL(strings.TrimSpace(part))
		switch {
		case err != nil:
			return fmt.Errorf("server %d: not a URL", i+1)
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
			return fmt.Errorf("server %d: scheme %q not one of nats, tls, ws, wss", i+1, u.Scheme)
		case u.Host == "":
			return fmt.Errorf("server %d: no host", i+1)
		}
	}
	return nil
}

// parseNATSURL parses one server URL; "host:port" means "nats://host:port".
func parseNATSURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	return url.Parse(s)
}

// maskNATSURL hides the password (or, for token authentication, the token)
// of every server URL in s. It works on the raw text, everything before the
// last "@" of a URL being credentials, so it also masks what url.Parse would
// refuse.
func maskNATSURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		at := strings.LastIndex(p, "@")
		if at < 0 {
			parts[i] = p
			continue
		}
		scheme := ""
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			scheme, p, at = p[:j+3], p[j+3:], at-j-3
		}
		user, _, hasPassword := strings.Cut(p[:at], ":")
		if !hasPassword {
			user = masked // nats://TOKEN@host
		} else {
			user += ":" + masked
		}
		parts[i] = scheme + user + p[at:]
	}
	return strings.Join(parts, ",")
}

// setting is one variable as Print shows it.
type setting struct{ name, value string }

// settings lists every variable in the order of docs/protocol.md section 7, with
// secrets masked.
func (c Config) settings() []setting {
	secret := func(s string) string {
		if s == "" {
			return ""
		}
		return masked
	}
	return []setting{
		{"ADDR", c.Addr},
		{"ADMIN_ADDR", c.AdminAddr},
		{"API_KEY", secret(c.APIKey)},
		{"WORKERS", strconv.Itoa(c.Workers)},
		{"MAX_CLIENTS", strconv.Itoa(c.MaxClients)},
		{"MAX_CONNS_PER_IP", strconv.Itoa(c.MaxConnsPerIP)},
		{"MAX_MESSAGE_BYTES", strconv.Itoa(c.MaxMessageBytes)},
		{"PING_INTERVAL", formatDuration(c.PingInterval)},
		{"CLIENT_TIMEOUT", formatDuration(c.ClientTimeout)},
		{"QUEUE_SIZE", strconv.Itoa(c.QueueSize)},
		{"RATE_MSGS", strconv.Itoa(c.RateMsgs)},
		{"RATE_BURST", strconv.Itoa(c.RateBurst)},
		{"ALLOW_BROADCAST", strconv.FormatBool(c.AllowBroadcast)},
		{"ALLOWED_ORIGINS", strings.Join(c.AllowedOrigins, ",")},
		{"MAX_ROOMS_PER_PEER", strconv.Itoa(c.MaxRoomsPerPeer)},
		{"MAX_ROOM_PEERS", strconv.Itoa(c.MaxRoomPeers)},
		{"BINARY_TYPES", c.BinaryTypes.String()},
		{"SHUTDOWN_TIMEOUT", formatDuration(c.ShutdownTimeout)},
		{"ECHO", strconv.FormatBool(c.Echo)},
		{"DEMO", strconv.FormatBool(c.Demo)},
		{"LOG_LEVEL", c.LogLevel},
		{"LOG_FORMAT", c.LogFormat},
		{"AUTH", c.Auth},
		{"JWT_SECRET", secret(c.JWTSecret)},
		{"JWT_PUBLIC_KEY_FILE", c.JWTPublicKeyFile},
		{"JWT_AUDIENCE", c.JWTAudience},
		{"JWT_ISSUER", c.JWTIssuer},
		{"JWT_REQUIRE_ROOMS", strconv.FormatBool(c.JWTRequireRooms)},
		{"TELEGRAM_BOT_TOKEN", secret(c.TelegramBotToken)},
		{"TELEGRAM_MAX_AGE", formatDuration(c.TelegramMaxAge)},
		{"TLS_CERT_FILE", c.TLSCertFile},
		{"TLS_KEY_FILE", c.TLSKeyFile},
		{"NATS_URL", maskNATSURL(c.NATSURL)},
		{"NODE_ID", c.NodeID},
		{"NATS_SUBJECT_PREFIX", c.NATSPrefix},
		{"FLOW_CONTROL", strconv.FormatBool(c.FlowControl)},
		{"STALL_TIMEOUT", formatDuration(c.StallTimeout)},
		{"RESUME_WINDOW", formatDuration(c.ResumeWindow)},
		{"COMPRESSION", strconv.FormatBool(c.Compression)},
		{"COMPRESSION_MIN_BYTES", strconv.Itoa(c.CompressionMinBytes)},
	}
}

// formatDuration writes d in Go syntax without zero trailing units: 24h, 1m30s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Print writes the effective configuration to w, one WSRELAY_NAME=value line
// per variable in the order of docs/protocol.md section 7, in a form Load
// accepts back. A set secret (WSRELAY_API_KEY, WSRELAY_JWT_SECRET,
// WSRELAY_TELEGRAM_BOT_TOKEN, the password or token in WSRELAY_NATS_URL) is
// shown as ******, an unset one as empty. Write errors are ignored.
func (c Config) Print(w io.Writer) {
	var sb strings.Builder
	for _, s := range c.settings() {
		sb.WriteString(Prefix)
		sb.WriteString(s.name)
		sb.WriteByte('=')
		sb.WriteString(oneLine(s.value))
		sb.WriteByte('\n')
	}
	io.WriteString(w, sb.String())
}

// LogValue implements slog.LogValuer: a Config logged through slog is a group
// of snake_case keys (max_clients, jwt_secret, ...) with secrets masked as in
// Print.
func (c Config) LogValue() slog.Value {
	settings := c.settings()
	attrs := make([]slog.Attr, len(settings))
	for i, s := range settings {
		attrs[i] = slog.String(strings.ToLower(s.name), s.value)
	}
	return slog.GroupValue(attrs...)
}

// parseLevel maps a WSRELAY_LOG_LEVEL value to its slog level.
func parseLevel(s string) (slog.Level, bool) {
	switch s {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// Logger returns a logger writing to w at LogLevel (info when unknown), as
// text (log/slog's key=value form) or, with LogFormat "json", one JSON object
// per line. The logger is safe for concurrent use.
func (c Config) Logger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
