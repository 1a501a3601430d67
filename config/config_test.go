package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// protocolVars is docs/protocol.md section 7's table, in its order, then
// the variables of later sections (13: compression).
var protocolVars = []string{
	"WSRELAY_ADDR", "WSRELAY_ADMIN_ADDR", "WSRELAY_API_KEY", "WSRELAY_WORKERS", "WSRELAY_MAX_CLIENTS", "WSRELAY_MAX_CONNS_PER_IP",
	"WSRELAY_MAX_MESSAGE_BYTES", "WSRELAY_PING_INTERVAL", "WSRELAY_CLIENT_TIMEOUT",
	"WSRELAY_QUEUE_SIZE", "WSRELAY_RATE_MSGS", "WSRELAY_RATE_BURST", "WSRELAY_ALLOW_BROADCAST",
	"WSRELAY_ALLOWED_ORIGINS", "WSRELAY_MAX_ROOMS_PER_PEER", "WSRELAY_MAX_ROOM_PEERS",
	"WSRELAY_BINARY_TYPES", "WSRELAY_SHUTDOWN_TIMEOUT", "WSRELAY_ECHO", "WSRELAY_DEMO",
	"WSRELAY_LOG_LEVEL", "WSRELAY_LOG_FORMAT", "WSRELAY_AUTH", "WSRELAY_JWT_SECRET",
	"WSRELAY_JWT_PUBLIC_KEY_FILE", "WSRELAY_JWT_AUDIENCE", "WSRELAY_JWT_ISSUER",
	"WSRELAY_JWT_REQUIRE_ROOMS",
	"WSRELAY_TELEGRAM_BOT_TOKEN", "WSRELAY_TELEGRAM_MAX_AGE", "WSRELAY_TLS_CERT_FILE",
	"WSRELAY_TLS_KEY_FILE", "WSRELAY_NATS_URL", "WSRELAY_NODE_ID", "WSRELAY_NATS_SUBJECT_PREFIX",
	"WSRELAY_FLOW_CONTROL", "WSRELAY_STALL_TIMEOUT",
	"WSRELAY_RESUME_WINDOW",
	"WSRELAY_COMPRESSION", "WSRELAY_COMPRESSION_MIN_BYTES",
}

// defaults is docs/protocol.md section 7's default column.
func defaults() Config {
	return Config{
		Addr:            ":8080",
		Workers:         max(1, runtime.GOMAXPROCS(0)-1),
		MaxClients:      100000,
		MaxConnsPerIP:   0,
		MaxMessageBytes: 65536,
		PingInterval:    25 * time.Second,
		ClientTimeout:   60 * time.Second,
		QueueSize:       256,
		RateMsgs:        100,
		RateBurst:       200,
		MaxRoomsPerPeer: 64,
		MaxRoomPeers:    0,
		ShutdownTimeout: 10 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
		Auth:            "none",
		TelegramMaxAge:  24 * time.Hour,
		NATSPrefix:      "wsrelay",
		FlowControl:     true,
		StallTimeout:    time.Second,
		ResumeWindow:    30 * time.Second,

		CompressionMinBytes: 512,
	}
}

// tempFile creates a readable file and returns its path.
func tempFile(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("-----BEGIN PUBLIC KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStructTagsMatchProtocol(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	var got []string
	for f := range typ.Fields() {
		got = append(got, Prefix+f.Tag.Get("env"))
	}
	if !reflect.DeepEqual(got, protocolVars) {
		t.Errorf("Config fields' env tags, in order:\n got %v\nwant %v", got, protocolVars)
	}
}

func TestLoadDefaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
	}{
		{"empty environment", nil},
		{"unrelated variables", []string{"HOME=/root", "ADDR=:1", "WORKERS=0", "PATH=/bin"}},
		{"empty values take defaults", []string{"WSRELAY_ADDR=", "WSRELAY_QUEUE_SIZE=", "WSRELAY_WORKERS=", "WSRELAY_LOG_LEVEL="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.environ)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if want := defaults(); !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q):\n got %+v\nwant %+v", tc.environ, got, want)
			}
		})
	}
}

// TestDefaultWorkersLeaveAP checks that the default number of pollers
// leaves one of the runtime's Ps free (or is one, on a single P), so that
// sysmon can back off (config/workers.go), and that it follows GOMAXPROCS,
// which follows a container's CPU limit.
func TestDefaultWorkersLeaveAP(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	for _, tc := range []struct {
		procs, want int
	}{
		{1, 1},
		{2, 1},
		{3, 2},
		{8, 7},
		{64, 63},
	} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", tc.procs), func(t *testing.T) {
			runtime.GOMAXPROCS(tc.procs)
			c, err := Load(nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Workers != tc.want {
				t.Errorf("Workers = %d, want %d", c.Workers, tc.want)
			}
			c, err = Load([]string{"WSRELAY_WORKERS=" + strconv.Itoa(tc.procs+3)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Workers != tc.procs+3 {
				t.Errorf("explicit WSRELAY_WORKERS=%d: Workers = %d", tc.procs+3, c.Workers)
			}
		})
	}
}

func TestLoadEachVariable(t *testing.T) {
	keyFile := tempFile(t, "jwt.pem")
	certFile := tempFile(t, "cert.pem")
	keyFile2 := tempFile(t, "key.pem")
	for _, tc := range []struct {
		name    string
		environ []string
		want    func(*Config)
	}{
		{"ADDR", []string{"WSRELAY_ADDR=127.0.0.1:0"}, func(c *Config) { c.Addr = "127.0.0.1:0" }},
		{"ADDR ipv6", []string{"WSRELAY_ADDR=[::1]:9000"}, func(c *Config) { c.Addr = "[::1]:9000" }},
		{"ADMIN_ADDR", []string{"WSRELAY_ADMIN_ADDR=127.0.0.1:9090"}, func(c *Config) { c.AdminAddr = "127.0.0.1:9090" }},
		{"ADMIN_ADDR random ports", []string{"WSRELAY_ADDR=127.0.0.1:0", "WSRELAY_ADMIN_ADDR=127.0.0.1:0"},
			func(c *Config) { c.Addr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0" }},
		{"API_KEY 32 bytes", []string{"WSRELAY_API_KEY=" + strings.Repeat("k", 32)}, func(c *Config) { c.APIKey = strings.Repeat("k", 32) }},
		{"WORKERS", []string{"WSRELAY_WORKERS=3"}, func(c *Config) { c.Workers = 3 }},
		{"WORKERS with spaces", []string{"WSRELAY_WORKERS= 3 "}, func(c *Config) { c.Workers = 3 }},
		{"MAX_CLIENTS", []string{"WSRELAY_MAX_CLIENTS=10"}, func(c *Config) { c.MaxClients = 10 }},
		{"MAX_CONNS_PER_IP", []string{"WSRELAY_MAX_CONNS_PER_IP=5"}, func(c *Config) { c.MaxConnsPerIP = 5 }},
		{"MAX_MESSAGE_BYTES min", []string{"WSRELAY_MAX_MESSAGE_BYTES=125"}, func(c *Config) { c.MaxMessageBytes = 125 }},
		{"MAX_MESSAGE_BYTES max", []string{"WSRELAY_MAX_MESSAGE_BYTES=67108864"}, func(c *Config) { c.MaxMessageBytes = 64 << 20 }},
		{"PING_INTERVAL", []string{"WSRELAY_PING_INTERVAL=250ms"}, func(c *Config) { c.PingInterval = 250 * time.Millisecond }},
		{"CLIENT_TIMEOUT", []string{"WSRELAY_CLIENT_TIMEOUT=2m"}, func(c *Config) { c.ClientTimeout = 2 * time.Minute }},
		{"QUEUE_SIZE", []string{"WSRELAY_QUEUE_SIZE=65536"}, func(c *Config) { c.QueueSize = 65536 }},
		{"RATE_MSGS off", []string{"WSRELAY_RATE_MSGS=0", "WSRELAY_RATE_BURST=0"}, func(c *Config) { c.RateMsgs, c.RateBurst = 0, 0 }},
		{"RATE_BURST", []string{"WSRELAY_RATE_BURST=1"}, func(c *Config) { c.RateBurst = 1 }},
		{"FLOW_CONTROL off", []string{"WSRELAY_FLOW_CONTROL=false"}, func(c *Config) { c.FlowControl = false }},
		{"STALL_TIMEOUT", []string{"WSRELAY_STALL_TIMEOUT=250ms"}, func(c *Config) { c.StallTimeout = 250 * time.Millisecond }},
		{"STALL_TIMEOUT at its minimum", []string{"WSRELAY_STALL_TIMEOUT=100ms"}, func(c *Config) { c.StallTimeout = MinStallTimeout }},
		{"ALLOW_BROADCAST", []string{"WSRELAY_ALLOW_BROADCAST=true"}, func(c *Config) { c.AllowBroadcast = true }},
		{"ALLOW_BROADCAST 1", []string{"WSRELAY_ALLOW_BROADCAST=1"}, func(c *Config) { c.AllowBroadcast = true }},
		{"ALLOWED_ORIGINS", []string{"WSRELAY_ALLOWED_ORIGINS= https://App.example.com ,,http://localhost:3000, "},
			func(c *Config) { c.AllowedOrigins = []string{"https://app.example.com", "http://localhost:3000"} }},
		{"ALLOWED_ORIGINS any", []string{"WSRELAY_ALLOWED_ORIGINS=*"}, func(c *Config) { c.AllowedOrigins = []string{"*"} }},
		{"ALLOWED_ORIGINS only commas", []string{"WSRELAY_ALLOWED_ORIGINS= , ,"}, func(c *Config) {}},
		{"MAX_ROOMS_PER_PEER", []string{"WSRELAY_MAX_ROOMS_PER_PEER=1"}, func(c *Config) { c.MaxRoomsPerPeer = 1 }},
		{"MAX_ROOM_PEERS", []string{"WSRELAY_MAX_ROOM_PEERS=2"}, func(c *Config) { c.MaxRoomPeers = 2 }},
		{"BINARY_TYPES", []string{"WSRELAY_BINARY_TYPES=1:65536,2:262144"},
			func(c *Config) { c.BinaryTypes = BinaryTypes{1: 65536, 2: 262144} }},
		{"SHUTDOWN_TIMEOUT zero", []string{"WSRELAY_SHUTDOWN_TIMEOUT=0s"}, func(c *Config) { c.ShutdownTimeout = 0 }},
		{"SHUTDOWN_TIMEOUT", []string{"WSRELAY_SHUTDOWN_TIMEOUT=1m30s"}, func(c *Config) { c.ShutdownTimeout = 90 * time.Second }},
		{"RESUME_WINDOW off", []string{"WSRELAY_RESUME_WINDOW=0"}, func(c *Config) { c.ResumeWindow = 0 }},
		{"RESUME_WINDOW", []string{"WSRELAY_RESUME_WINDOW=2m"}, func(c *Config) { c.ResumeWindow = 2 * time.Minute }},
		{"ECHO", []string{"WSRELAY_ECHO=true"}, func(c *Config) { c.Echo = true }},
		{"DEMO", []string{"WSRELAY_DEMO=TRUE"}, func(c *Config) { c.Demo = true }},
		{"LOG_LEVEL", []string{"WSRELAY_LOG_LEVEL=debug"}, func(c *Config) { c.LogLevel = "debug" }},
		{"LOG_LEVEL upper case", []string{"WSRELAY_LOG_LEVEL=WARN"}, func(c *Config) { c.LogLevel = "warn" }},
		{"LOG_FORMAT", []string{"WSRELAY_LOG_FORMAT=json"}, func(c *Config) { c.LogFormat = "json" }},
		{"AUTH jwt secret", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET=s3cret", "WSRELAY_JWT_AUDIENCE=aud", "WSRELAY_JWT_ISSUER=iss"},
			func(c *Config) { c.Auth, c.JWTSecret, c.JWTAudience, c.JWTIssuer = "jwt", "s3cret", "aud", "iss" }},
		{"AUTH jwt key file", []string{"WSRELAY_AUTH=JWT", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + keyFile},
			func(c *Config) { c.Auth, c.JWTPublicKeyFile = "jwt", keyFile }},
		{"AUTH key", []string{"WSRELAY_AUTH=Key"}, func(c *Config) { c.Auth = "key" }},
		{"AUTH key with a JWT key for room tokens", []string{"WSRELAY_AUTH=key", "WSRELAY_JWT_SECRET=s3cret"},
			func(c *Config) { c.Auth, c.JWTSecret = "key", "s3cret" }},
		{"JWT_REQUIRE_ROOMS", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET=s3cret", "WSRELAY_JWT_REQUIRE_ROOMS=true"},
			func(c *Config) { c.Auth, c.JWTSecret, c.JWTRequireRooms = "jwt", "s3cret", true }},
		{"JWT_REQUIRE_ROOMS with auth key", []string{"WSRELAY_AUTH=key", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + keyFile, "WSRELAY_JWT_REQUIRE_ROOMS=1"},
			func(c *Config) { c.Auth, c.JWTPublicKeyFile, c.JWTRequireRooms = "key", keyFile, true }},
		{"JWT_REQUIRE_ROOMS false without a key", []string{"WSRELAY_JWT_REQUIRE_ROOMS=false"}, func(c *Config) {}},
		{"AUTH telegram", []string{"WSRELAY_AUTH=telegram", "WSRELAY_TELEGRAM_BOT_TOKEN=123:abc", "WSRELAY_TELEGRAM_MAX_AGE=1h"},
			func(c *Config) { c.Auth, c.TelegramBotToken, c.TelegramMaxAge = "telegram", "123:abc", time.Hour }},
		{"TLS", []string{"WSRELAY_TLS_CERT_FILE=" + certFile, "WSRELAY_TLS_KEY_FILE=" + keyFile2},
			func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile2 }},
		{"NATS_URL", []string{"WSRELAY_NATS_URL=nats://u:p@10.0.0.1:4222,tls://n2:4222"},
			func(c *Config) { c.NATSURL = "nats://u:p@10.0.0.1:4222,tls://n2:4222" }},
		{"NATS_URL without scheme", []string{"WSRELAY_NATS_URL=localhost:4222"}, func(c *Config) { c.NATSURL = "localhost:4222" }},
		{"NODE_ID", []string{"WSRELAY_NODE_ID=eu-1_a"}, func(c *Config) { c.NodeID = "eu-1_a" }},
		{"NATS_SUBJECT_PREFIX", []string{"WSRELAY_NATS_SUBJECT_PREFIX=acme.relay-2"}, func(c *Config) { c.NATSPrefix = "acme.relay-2" }},
		{"COMPRESSION", []string{"WSRELAY_COMPRESSION=true"}, func(c *Config) { c.Compression = true }},
		{"COMPRESSION_MIN_BYTES", []string{"WSRELAY_COMPRESSION_MIN_BYTES=0"}, func(c *Config) { c.CompressionMinBytes = 0 }},
		{"last duplicate wins", []string{"WSRELAY_QUEUE_SIZE=1", "WSRELAY_QUEUE_SIZE=2"}, func(c *Config) { c.QueueSize = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.environ)
			if err != nil {
				t.Fatalf("Load(%q): %v", tc.environ, err)
			}
			want := defaults()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q):\n got %+v\nwant %+v", tc.environ, got, want)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	keyFile := tempFile(t, "jwt.pem")
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name    string
		environ []string
		wantVar string
		// wantText, when set, must appear in the message.
		wantText string
	}{
		{"ADDR no port", []string{"WSRELAY_ADDR=8080"}, "WSRELAY_ADDR", `"8080"`},
		{"ADDR bad port", []string{"WSRELAY_ADDR=:http"}, "WSRELAY_ADDR", ""},
		{"ADDR port too big", []string{"WSRELAY_ADDR=:65536"}, "WSRELAY_ADDR", ""},
		{"ADMIN_ADDR no port", []string{"WSRELAY_ADMIN_ADDR=localhost"}, "WSRELAY_ADMIN_ADDR", `"localhost"`},
		{"ADMIN_ADDR bad port", []string{"WSRELAY_ADMIN_ADDR=:metrics"}, "WSRELAY_ADMIN_ADDR", "0-65535"},
		{"ADMIN_ADDR same as ADDR", []string{"WSRELAY_ADDR=:9000", "WSRELAY_ADMIN_ADDR=:9000"}, "WSRELAY_ADMIN_ADDR", "differ"},
		{"API_KEY short", []string{"WSRELAY_API_KEY=hunter2-" + strings.Repeat("k", 23)}, "WSRELAY_API_KEY", "at least 32 bytes, got 31"},
		{"WORKERS zero", []string{"WSRELAY_WORKERS=0"}, "WSRELAY_WORKERS", "got 0"},
		{"WORKERS negative", []string{"WSRELAY_WORKERS=-1"}, "WSRELAY_WORKERS", "negative"},
		{"WORKERS not a number", []string{"WSRELAY_WORKERS=four"}, "WSRELAY_WORKERS", `invalid integer "four"`},
		{"WORKERS overflow", []string{"WSRELAY_WORKERS=99999999999999999999"}, "WSRELAY_WORKERS", "out of range"},
		{"MAX_CLIENTS zero", []string{"WSRELAY_MAX_CLIENTS=0"}, "WSRELAY_MAX_CLIENTS", ""},
		{"MAX_CLIENTS negative", []string{"WSRELAY_MAX_CLIENTS=-5"}, "WSRELAY_MAX_CLIENTS", "negative"},
		{"MAX_CLIENTS float", []string{"WSRELAY_MAX_CLIENTS=1.5"}, "WSRELAY_MAX_CLIENTS", "invalid integer"},
		{"MAX_CONNS_PER_IP negative", []string{"WSRELAY_MAX_CONNS_PER_IP=-1"}, "WSRELAY_MAX_CONNS_PER_IP", "negative"},
		{"MAX_MESSAGE_BYTES small", []string{"WSRELAY_MAX_MESSAGE_BYTES=124"}, "WSRELAY_MAX_MESSAGE_BYTES", "between 125 and 67108864, got 124"},
		{"MAX_MESSAGE_BYTES large", []string{"WSRELAY_MAX_MESSAGE_BYTES=67108865"}, "WSRELAY_MAX_MESSAGE_BYTES", ""},
		{"MAX_MESSAGE_BYTES negative", []string{"WSRELAY_MAX_MESSAGE_BYTES=-1"}, "WSRELAY_MAX_MESSAGE_BYTES", ""},
		{"PING_INTERVAL syntax", []string{"WSRELAY_PING_INTERVAL=abc"}, "WSRELAY_PING_INTERVAL", `invalid duration "abc"`},
		{"PING_INTERVAL no unit", []string{"WSRELAY_PING_INTERVAL=25"}, "WSRELAY_PING_INTERVAL", "invalid duration"},
		{"PING_INTERVAL zero", []string{"WSRELAY_PING_INTERVAL=0s"}, "WSRELAY_PING_INTERVAL", "positive"},
		{"PING_INTERVAL negative", []string{"WSRELAY_PING_INTERVAL=-1s"}, "WSRELAY_PING_INTERVAL", ""},
		{"CLIENT_TIMEOUT zero", []string{"WSRELAY_CLIENT_TIMEOUT=0"}, "WSRELAY_CLIENT_TIMEOUT", ""},
		{"CLIENT_TIMEOUT syntax", []string{"WSRELAY_CLIENT_TIMEOUT=1 minute"}, "WSRELAY_CLIENT_TIMEOUT", ""},
		{"CLIENT_TIMEOUT shorter than PING_INTERVAL", []string{"WSRELAY_CLIENT_TIMEOUT=20s"}, "WSRELAY_CLIENT_TIMEOUT", "longer than WSRELAY_PING_INTERVAL (25s), got 20s"},
		{"CLIENT_TIMEOUT equal to PING_INTERVAL", []string{"WSRELAY_PING_INTERVAL=1m", "WSRELAY_CLIENT_TIMEOUT=1m"}, "WSRELAY_CLIENT_TIMEOUT", "WSRELAY_PING_INTERVAL (1m0s), got 1m0s"},
		{"QUEUE_SIZE zero", []string{"WSRELAY_QUEUE_SIZE=0"}, "WSRELAY_QUEUE_SIZE", "must be between 1 and 65536, got 0"},
		{"QUEUE_SIZE large", []string{"WSRELAY_QUEUE_SIZE=65537"}, "WSRELAY_QUEUE_SIZE", ""},
		{"RATE_MSGS negative", []string{"WSRELAY_RATE_MSGS=-1"}, "WSRELAY_RATE_MSGS", "negative"},
		{"RATE_BURST zero with rate", []string{"WSRELAY_RATE_BURST=0"}, "WSRELAY_RATE_BURST", "at least 1"},
		{"RATE_BURST negative without rate", []string{"WSRELAY_RATE_MSGS=0", "WSRELAY_RATE_BURST=-1"}, "WSRELAY_RATE_BURST", "negative"},
		{"ALLOW_BROADCAST", []string{"WSRELAY_ALLOW_BROADCAST=yes"}, "WSRELAY_ALLOW_BROADCAST", `invalid boolean "yes"`},
		{"ALLOWED_ORIGINS no scheme", []string{"WSRELAY_ALLOWED_ORIGINS=app.example.com"}, "WSRELAY_ALLOWED_ORIGINS", `"app.example.com"`},
		{"ALLOWED_ORIGINS path", []string{"WSRELAY_ALLOWED_ORIGINS=https://a.example/x"}, "WSRELAY_ALLOWED_ORIGINS", ""},
		{"ALLOWED_ORIGINS trailing slash", []string{"WSRELAY_ALLOWED_ORIGINS=https://a.example/"}, "WSRELAY_ALLOWED_ORIGINS", "trailing slash"},
		{"MAX_ROOMS_PER_PEER zero", []string{"WSRELAY_MAX_ROOMS_PER_PEER=0"}, "WSRELAY_MAX_ROOMS_PER_PEER", ""},
		{"MAX_ROOMS_PER_PEER negative", []string{"WSRELAY_MAX_ROOMS_PER_PEER=-3"}, "WSRELAY_MAX_ROOMS_PER_PEER", "negative"},
		{"MAX_ROOM_PEERS negative", []string{"WSRELAY_MAX_ROOM_PEERS=-1"}, "WSRELAY_MAX_ROOM_PEERS", "negative"},
		{"BINARY_TYPES syntax", []string{"WSRELAY_BINARY_TYPES=1=100"}, "WSRELAY_BINARY_TYPES", "type:limit"},
		{"BINARY_TYPES type too big", []string{"WSRELAY_BINARY_TYPES=256:100"}, "WSRELAY_BINARY_TYPES", "0-255"},
		{"BINARY_TYPES negative limit", []string{"WSRELAY_BINARY_TYPES=1:-100"}, "WSRELAY_BINARY_TYPES", "positive"},
		{"BINARY_TYPES duplicate", []string{"WSRELAY_BINARY_TYPES=1:100,1:200"}, "WSRELAY_BINARY_TYPES", "twice"},
		{"FLOW_CONTROL syntax", []string{"WSRELAY_FLOW_CONTROL=off"}, "WSRELAY_FLOW_CONTROL", `invalid boolean "off"`},
		{"STALL_TIMEOUT too short", []string{"WSRELAY_STALL_TIMEOUT=99ms"}, "WSRELAY_STALL_TIMEOUT", "at least 100ms, got 99ms"},
		{"STALL_TIMEOUT zero", []string{"WSRELAY_STALL_TIMEOUT=0"}, "WSRELAY_STALL_TIMEOUT", "at least 100ms"},
		{"SHUTDOWN_TIMEOUT negative", []string{"WSRELAY_SHUTDOWN_TIMEOUT=-1s"}, "WSRELAY_SHUTDOWN_TIMEOUT", "negative"},
		{"RESUME_WINDOW negative", []string{"WSRELAY_RESUME_WINDOW=-1s"}, "WSRELAY_RESUME_WINDOW", "negative"},
		{"ECHO", []string{"WSRELAY_ECHO=on"}, "WSRELAY_ECHO", ""},
		{"DEMO", []string{"WSRELAY_DEMO=2"}, "WSRELAY_DEMO", ""},
		{"LOG_LEVEL", []string{"WSRELAY_LOG_LEVEL=trace"}, "WSRELAY_LOG_LEVEL", `"trace"`},
		{"LOG_FORMAT", []string{"WSRELAY_LOG_FORMAT=xml"}, "WSRELAY_LOG_FORMAT", ""},
		{"AUTH unknown", []string{"WSRELAY_AUTH=basic"}, "WSRELAY_AUTH", `"basic"`},
		{"AUTH jwt without key", []string{"WSRELAY_AUTH=jwt"}, "WSRELAY_JWT_SECRET", ""},
		{"AUTH jwt with both keys", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET=x", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + keyFile}, "WSRELAY_JWT_SECRET", "only one"},
		{"JWT_PUBLIC_KEY_FILE missing", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + missing}, "WSRELAY_JWT_PUBLIC_KEY_FILE", "no such file"},
		{"JWT_PUBLIC_KEY_FILE directory", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + dir}, "WSRELAY_JWT_PUBLIC_KEY_FILE", "directory"},
		{"AUTH key with both JWT keys", []string{"WSRELAY_AUTH=key", "WSRELAY_JWT_SECRET=x", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + keyFile}, "WSRELAY_JWT_SECRET", "only one"},
		{"JWT_REQUIRE_ROOMS without a JWT key", []string{"WSRELAY_AUTH=key", "WSRELAY_JWT_REQUIRE_ROOMS=true"}, "WSRELAY_JWT_REQUIRE_ROOMS", "room tokens"},
		{"JWT_REQUIRE_ROOMS syntax", []string{"WSRELAY_JWT_REQUIRE_ROOMS=yes"}, "WSRELAY_JWT_REQUIRE_ROOMS", `invalid boolean "yes"`},
		{"AUTH telegram without token", []string{"WSRELAY_AUTH=telegram"}, "WSRELAY_TELEGRAM_BOT_TOKEN", ""},
		{"TELEGRAM_MAX_AGE zero", []string{"WSRELAY_TELEGRAM_MAX_AGE=0s"}, "WSRELAY_TELEGRAM_MAX_AGE", ""},
		{"TELEGRAM_MAX_AGE syntax", []string{"WSRELAY_TELEGRAM_MAX_AGE=1d"}, "WSRELAY_TELEGRAM_MAX_AGE", `"1d"`},
		{"TLS cert without key", []string{"WSRELAY_TLS_CERT_FILE=" + keyFile}, "WSRELAY_TLS_KEY_FILE", ""},
		{"TLS key without cert", []string{"WSRELAY_TLS_KEY_FILE=" + keyFile}, "WSRELAY_TLS_CERT_FILE", ""},
		{"TLS cert unreadable", []string{"WSRELAY_TLS_CERT_FILE=" + missing, "WSRELAY_TLS_KEY_FILE=" + keyFile}, "WSRELAY_TLS_CERT_FILE", ""},
		{"TLS key unreadable", []string{"WSRELAY_TLS_CERT_FILE=" + keyFile, "WSRELAY_TLS_KEY_FILE=" + missing}, "WSRELAY_TLS_KEY_FILE", ""},
		{"NATS_URL scheme", []string{"WSRELAY_NATS_URL=http://u:hunter2@n1:4222"}, "WSRELAY_NATS_URL", "scheme"},
		{"NATS_URL unparsable", []string{"WSRELAY_NATS_URL=nats://u:hunter2@n1:4222,nats://[bad"}, "WSRELAY_NATS_URL", "server 2"},
		{"NODE_ID with a dot", []string{"WSRELAY_NODE_ID=a.b"}, "WSRELAY_NODE_ID", `"a.b"`},
		{"NODE_ID wildcard", []string{"WSRELAY_NODE_ID=*"}, "WSRELAY_NODE_ID", ""},
		{"NODE_ID too long", []string{"WSRELAY_NODE_ID=" + strings.Repeat("n", 65)}, "WSRELAY_NODE_ID", ""},
		{"NATS_SUBJECT_PREFIX empty token", []string{"WSRELAY_NATS_SUBJECT_PREFIX=a..b"}, "WSRELAY_NATS_SUBJECT_PREFIX", ""},
		{"NATS_SUBJECT_PREFIX wildcard", []string{"WSRELAY_NATS_SUBJECT_PREFIX=a.>"}, "WSRELAY_NATS_SUBJECT_PREFIX", ""},
		{"COMPRESSION not a boolean", []string{"WSRELAY_COMPRESSION=gzip"}, "WSRELAY_COMPRESSION", ""},
		{"COMPRESSION_MIN_BYTES negative", []string{"WSRELAY_COMPRESSION_MIN_BYTES=-1"}, "WSRELAY_COMPRESSION_MIN_BYTES", ""},
		{"newline in value", []string{"WSRELAY_PING_INTERVAL=1s\n2s"}, "WSRELAY_PING_INTERVAL", ""},
		{"first of several errors", []string{"WSRELAY_QUEUE_SIZE=x", "WSRELAY_PING_INTERVAL=y"}, "WSRELAY_PING_INTERVAL", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.environ)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, want an error", tc.environ, c)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.wantVar+": ") {
				t.Errorf("error %q does not start with %q", msg, tc.wantVar+": ")
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q is not one line", msg)
			}
			if !strings.Contains(msg, tc.wantText) {
				t.Errorf("error %q does not contain %q", msg, tc.wantText)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q reveals a password", msg)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tc.wantVar {
				t.Errorf("error %#v is not an *Error for %s", err, tc.wantVar)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Load returned a non-zero Config with its error")
			}
		})
	}
}

func TestValidateUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := tempFile(t, "key.pem")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	c := defaults()
	c.Auth, c.JWTPublicKeyFile = "jwt", path
	err := c.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "WSRELAY_JWT_PUBLIC_KEY_FILE: ") || !errors.Is(err, os.ErrPermission) {
		t.Errorf("Validate with an unreadable key file = %v, want a permission error for WSRELAY_JWT_PUBLIC_KEY_FILE", err)
	}
}

func TestValidateBinaryTypesLimit(t *testing.T) {
	c := defaults()
	c.BinaryTypes = BinaryTypes{7: 0}
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "WSRELAY_BINARY_TYPES: ") {
		t.Errorf("Validate with a zero limit = %v, want a WSRELAY_BINARY_TYPES error", err)
	}
}

func TestBinaryTypesUnmarshalText(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    BinaryTypes
		wantErr string
	}{
		{in: "", want: nil},
		{in: "   ", want: nil},
		{in: "1:65536,2:262144", want: BinaryTypes{1: 65536, 2: 262144}},
		{in: " 0 : 10 , 255:1 ", want: BinaryTypes{0: 10, 255: 1}},
		{in: "1", wantErr: "type:limit"},
		{in: "1:10,", wantErr: "type:limit"},
		{in: ",1:10", wantErr: "type:limit"},
		{in: "a:10", wantErr: "not a number"},
		{in: "1:ten", wantErr: "not a number"},
		{in: "-1:10", wantErr: "0-255"},
		{in: "256:10", wantErr: "0-255"},
		{in: "1:0", wantErr: "positive"},
		{in: "1:-1", wantErr: "positive"},
		{in: "1:10,2:20,1:30", wantErr: "type 1 listed twice"},
		{in: "1:2:3", wantErr: "not a number"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := BinaryTypes{99: 1} // must be replaced, not merged into
			err := got.UnmarshalText([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("UnmarshalText(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("UnmarshalText(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestBinaryTypesAllows(t *testing.T) {
	bt := BinaryTypes{1: 100, 2: 1000}
	for _, tc := range []struct {
		name  string
		bt    BinaryTypes
		ctype byte
		n     int
		want  bool
	}{
		{"nil allows all", nil, 0, 1 << 20, true},
		{"empty allows all", BinaryTypes{}, 200, 5, true},
		{"listed under limit", bt, 1, 99, true},
		{"listed at limit", bt, 1, 100, true},
		{"listed over limit", bt, 1, 101, false},
		{"other limit", bt, 2, 1000, true},
		{"unlisted", bt, 3, 1, false},
		{"untyped unlisted", bt, 0, 0, false},
		{"untyped listed", BinaryTypes{0: 5}, 0, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.bt.Allows(tc.ctype, tc.n); got != tc.want {
				t.Errorf("%v.Allows(%d, %d) = %v, want %v", tc.bt, tc.ctype, tc.n, got, tc.want)
			}
		})
	}
}

func TestBinaryTypesString(t *testing.T) {
	for _, tc := range []struct {
		bt   BinaryTypes
		want string
	}{
		{nil, ""},
		{BinaryTypes{2: 262144, 1: 65536, 0: 1}, "0:1,1:65536,2:262144"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.bt.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// printed runs Print and returns its lines as name -> value, checking the
// order against docs/protocol.md.
func printed(t *testing.T, c Config) (string, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	c.Print(&buf)
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var names []string
	m := map[string]string{}
	for _, l := range lines {
		name, value, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("Print line %q is not NAME=value", l)
		}
		names = append(names, name)
		m[name] = value
	}
	if !reflect.DeepEqual(names, protocolVars) {
		t.Errorf("Print variables, in order:\n got %v\nwant %v", names, protocolVars)
	}
	return out, m
}

func TestPrint(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		_, m := printed(t, defaults())
		for name, want := range map[string]string{
			"WSRELAY_ADDR": ":8080", "WSRELAY_ADMIN_ADDR": "", "WSRELAY_API_KEY": "", "WSRELAY_MAX_CLIENTS": "100000", "WSRELAY_PING_INTERVAL": "25s",
			"WSRELAY_CLIENT_TIMEOUT": "1m", "WSRELAY_TELEGRAM_MAX_AGE": "24h", "WSRELAY_SHUTDOWN_TIMEOUT": "10s",
			"WSRELAY_ALLOW_BROADCAST": "false", "WSRELAY_AUTH": "none", "WSRELAY_JWT_SECRET": "", "WSRELAY_JWT_REQUIRE_ROOMS": "false",
			"WSRELAY_TELEGRAM_BOT_TOKEN": "", "WSRELAY_NATS_URL": "", "WSRELAY_BINARY_TYPES": "",
			"WSRELAY_NODE_ID": "", "WSRELAY_NATS_SUBJECT_PREFIX": "wsrelay",
			"WSRELAY_COMPRESSION": "false", "WSRELAY_COMPRESSION_MIN_BYTES": "512",
			"WSRELAY_FLOW_CONTROL": "true", "WSRELAY_STALL_TIMEOUT": "1s", "WSRELAY_RESUME_WINDOW": "30s",
			"WSRELAY_MAX_MESSAGE_BYTES": "65536", "WSRELAY_QUEUE_SIZE": "256", "WSRELAY_RATE_MSGS": "100",
			"WSRELAY_RATE_BURST": "200", "WSRELAY_MAX_CONNS_PER_IP": "0", "WSRELAY_MAX_ROOMS_PER_PEER": "64",
			"WSRELAY_MAX_ROOM_PEERS": "0", "WSRELAY_ECHO": "false", "WSRELAY_DEMO": "false",
			"WSRELAY_LOG_LEVEL": "info", "WSRELAY_LOG_FORMAT": "text", "WSRELAY_ALLOWED_ORIGINS": "",
		} {
			if m[name] != want {
				t.Errorf("%s=%q, want %q", name, m[name], want)
			}
		}
	})

	t.Run("secrets masked", func(t *testing.T) {
		c := defaults()
		c.JWTSecret = "jwt-secret-value"
		c.APIKey = "api-key-value-api-key-value-api-key-value"
		c.TelegramBotToken = "123456:telegram-token-value"
		c.NATSURL = "nats://alice:nats-password-value@n1:4222, nats://nats-token-value@n2:4222,n3:4222,bob:other-password-value@n4:4222,nats://c:odd/password@value@n5"
		out, m := printed(t, c)
		for _, secret := range []string{"api-key-value", "jwt-secret-value", "telegram-token-value", "nats-password-value", "nats-token-value", "other-password-value", "odd/password"} {
			if strings.Contains(out, secret) {
				t.Errorf("Print output reveals %q:\n%s", secret, out)
			}
		}
		for name, want := range map[string]string{
			"WSRELAY_API_KEY":            "******",
			"WSRELAY_JWT_SECRET":         "******",
			"WSRELAY_TELEGRAM_BOT_TOKEN": "******",
			"WSRELAY_NATS_URL":           "nats://alice:******@n1:4222,nats://******@n2:4222,n3:4222,bob:******@n4:4222,nats://c:******@n5",
		} {
			if m[name] != want {
				t.Errorf("%s=%q, want %q", name, m[name], want)
			}
		}
	})

	t.Run("round trip", func(t *testing.T) {
		environ := []string{
			"WSRELAY_ADDR=127.0.0.1:9999", "WSRELAY_ADMIN_ADDR=127.0.0.1:9998", "WSRELAY_WORKERS=7", "WSRELAY_PING_INTERVAL=1500ms",
			"WSRELAY_CLIENT_TIMEOUT=1h30m", "WSRELAY_ALLOWED_ORIGINS=https://a.example,http://b.example:8080",
			"WSRELAY_BINARY_TYPES=2:5,1:9", "WSRELAY_ECHO=true", "WSRELAY_LOG_FORMAT=json",
			"WSRELAY_JWT_AUDIENCE=aud", "WSRELAY_NATS_URL=nats://n1:4222", "WSRELAY_NODE_ID=n-1",
			"WSRELAY_NATS_SUBJECT_PREFIX=acme.relay", "WSRELAY_AUTH=key",
			"WSRELAY_JWT_PUBLIC_KEY_FILE=" + tempFile(t, "jwt.pem"), "WSRELAY_JWT_REQUIRE_ROOMS=true",
			"WSRELAY_COMPRESSION=true", "WSRELAY_COMPRESSION_MIN_BYTES=1024",
		}
		c, err := Load(environ)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := printed(t, c)
		back, err := Load(strings.Split(strings.TrimSpace(out), "\n"))
		if err != nil {
			t.Fatalf("Load(Print output): %v", err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("Load(Print(c)) = %+v, want %+v", back, c)
		}
	})
}

func TestLogValueMasksSecrets(t *testing.T) {
	c := defaults()
	c.JWTSecret = "jwt-secret-value"
	c.NATSURL = "nats://u:nats-password-value@n1:4222"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	out := buf.String()
	for _, secret := range []string{"jwt-secret-value", "nats-password-value"} {
		if strings.Contains(out, secret) {
			t.Errorf("logged config reveals %q: %s", secret, out)
		}
	}
	var rec struct {
		Config map[string]string `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Config["max_clients"] != "100000" || rec.Config["jwt_secret"] != "******" {
		t.Errorf("logged config = %v", rec.Config)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    Flags
		wantErr bool
	}{
		{"none", nil, Flags{}, false},
		{"double dash", []string{"--verbose", "--print-config"}, Flags{Verbose: true, PrintConfig: true}, false},
		{"single dash", []string{"-quiet", "-version"}, Flags{Quiet: true, Version: true}, false},
		{"explicit false", []string{"--verbose=false"}, Flags{}, false},
		{"unknown flag", []string{"--nope"}, Flags{}, true},
		{"positional", []string{"serve"}, Flags{}, true},
		{"help", []string{"--help"}, Flags{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := ParseFlags(tc.args, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseFlags(%q) error = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseFlags(%q) = %+v, want %+v", tc.args, got, tc.want)
			}
			if tc.wantErr && stderr.Len() == 0 {
				t.Errorf("ParseFlags(%q) wrote nothing to stderr", tc.args)
			}
		})
	}
	t.Run("help is ErrHelp", func(t *testing.T) {
		if _, err := ParseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("ParseFlags(-h) error = %v, want flag.ErrHelp", err)
		}
	})
}

func TestApplyFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Flags
		want string
	}{
		{"none keeps level", Flags{}, "error"},
		{"verbose", Flags{Verbose: true}, "debug"},
		{"quiet", Flags{Quiet: true}, "warn"},
		{"verbose wins", Flags{Verbose: true, Quiet: true}, "debug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			c.LogLevel = "error"
			c.ApplyFlags(tc.f)
			if c.LogLevel != tc.want {
				t.Errorf("LogLevel = %q, want %q", c.LogLevel, tc.want)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	for _, tc := range []struct {
		name, level, format string
		wantDebug, wantInfo bool
		wantJSON            bool
	}{
		{"info text", "info", "text", false, true, false},
		{"debug json", "debug", "json", true, true, true},
		{"warn", "warn", "text", false, false, false},
		{"error", "error", "json", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			c.LogLevel, c.LogFormat = tc.level, tc.format
			var buf bytes.Buffer
			l := c.Logger(&buf)
			l.Debug("dbg-msg")
			l.Info("info-msg", "peer_id", "p1")
			l.Error("err-msg")
			out := buf.String()
			if got := strings.Contains(out, "dbg-msg"); got != tc.wantDebug {
				t.Errorf("debug logged = %v, want %v:\n%s", got, tc.wantDebug, out)
			}
			if got := strings.Contains(out, "info-msg"); got != tc.wantInfo {
				t.Errorf("info logged = %v, want %v:\n%s", got, tc.wantInfo, out)
			}
			if !strings.Contains(out, "err-msg") {
				t.Errorf("error not logged:\n%s", out)
			}
			if got := strings.HasPrefix(out, "{"); got != tc.wantJSON {
				t.Errorf("JSON output = %v, want %v:\n%s", got, tc.wantJSON, out)
			}
		})
	}
}
