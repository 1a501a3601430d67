package loop

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	RouteEngineLogs(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
