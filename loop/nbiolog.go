package loop

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lesismal/nbio/logging"
)

// RouteEngineLogs sends nbio's own log lines to l: its informational chatter
// at debug level, its warnings and errors as such. nbio's logger is global
// to the process, so main calls this once.
func RouteEngineLogs(l *slog.Logger) {
	logging.SetLogger(engineLog{l.With("component", "nbio")})
	logging.SetLevel(logging.LevelDebug)
}

type engineLog struct{ l *slog.Logger }

func (e engineLog) SetLevel(int)                  {}
func (e engineLog) Debug(format string, v ...any) { e.debug(format, v) }
func (e engineLog) Info(format string, v ...any)  { e.debug(format, v) }

func (e engineLog) debug(format string, v []any) {
	if e.l.Enabled(context.Background(), slog.LevelDebug) {
		e.l.Debug(fmt.Sprintf(format, v...))
	}
}
func (e engineLog) Warn(format string, v ...any) {
	e.l.Warn(fmt.Sprintf(format, v...))
}
func (e engineLog) Error(format string, v ...any) {
	e.l.Error(fmt.Sprintf(format, v...))
}
