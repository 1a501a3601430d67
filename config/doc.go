// Package config holds wsrelay's configuration: the WSRELAY_* environment
// variables of docs/protocol.md section 7 and the four command-line flags.
//
// The environment is parsed once, in main, by [Load], which takes the
// environment as an argument (never reading os.Environ itself) and returns a
// validated [Config]. The Config is then passed down by value; nothing in this
// package holds global state.
//
// Every error from [Load] and [Config.Validate] is an [*Error]: a single line
// that starts with the variable's full name, for example
//
//	WSRELAY_PING_INTERVAL: invalid duration "abc"
//	WSRELAY_QUEUE_SIZE: must be between 1 and 65536, got 0
//
// so main can print it as is and exit with status 2 before it listens.
//
// Secrets (WSRELAY_JWT_SECRET, WSRELAY_TELEGRAM_BOT_TOKEN and the credentials in
// WSRELAY_NATS_URL) never appear in error messages, in [Config.Print] output,
// or in a Config logged through log/slog.
package config
