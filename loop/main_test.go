package loop_test

import (
	"log/slog"
	"testing"

	"github.com/wsrelay/wsrelay/loop"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	loop.RouteEngineLogs(slog.New(slog.DiscardHandler))
	// Every goroutine a server starts (pollers, listener, sweeper, drain
	// workers, executor) must be gone once the tests closed their servers.
	goleak.VerifyTestMain(m)
}
