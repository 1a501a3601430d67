package stats

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	vm "github.com/VictoriaMetrics/metrics"
)

// families parses an exposition into its # HELP texts and # TYPE types, by
// family, and the families that have samples.
func families(t *testing.T, text string) (helps, types map[string]string, sampled map[string]bool) {
	t.Helper()
	helps, types, sampled = map[string]string{}, map[string]string{}, map[string]bool{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? \S+$`)
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, text, _ := strings.Cut(line[len("# HELP "):], " ")
			if _, dup := helps[name]; dup {
				t.Errorf("two # HELP lines for %s", name)
			}
			helps[name] = text
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if _, dup := types[name]; dup {
				t.Errorf("two # TYPE lines for %s", name)
			}
			types[name] = typ
		default:
			m := sample.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("not a sample line: %q", line)
				continue
			}
			name := m[1]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base := strings.TrimSuffix(name, suffix); base != name && (types[base] == "histogram" || types[base] == "summary") {
					name = base
				}
			}
			if types[name] == "" {
				t.Errorf("sample of %s before (or without) its # TYPE line", name)
			}
			sampled[name] = true
		}
	}
	return helps, types, sampled
}

func TestWritePrometheusDescribesEverySeries(t *testing.T) {
	s := New(vm.NewSet(), 10)
	s.Fanout(3)
	var out bytes.Buffer
	WritePrometheus(&out, s.Set)
	helps, types, sampled := families(t, out.String())

	want := map[string]string{
		"wsrelay_connections":                       "gauge",
		"wsrelay_rooms":                             "gauge",
		"wsrelay_connections_accepted_total":        "counter",
		"wsrelay_connections_rejected_total":        "counter",
		"wsrelay_messages_received_total":           "counter",
		"wsrelay_messages_delivered_total":          "counter",
		"wsrelay_messages_dropped_total":            "counter",
		"wsrelay_messages_discarded_at_close_total": "counter",
		"wsrelay_bytes_received_total":              "counter",
		"wsrelay_bytes_sent_total":                  "counter",
		"wsrelay_evictions_total":                   "counter",
		"wsrelay_fanout_size":                       "histogram",
		"process_resident_memory_bytes":             "gauge",
		"process_cpu_seconds_total":                 "counter",
		"go_goroutines":                             "gauge",
	}
	for name := range dropped {
		if types[name] != "" || sampled[name] {
			t.Errorf("%s is written, want it left out", name)
		}
	}
	for name, typ := range want {
		if types[name] != typ {
			t.Errorf("# TYPE %s = %q, want %q", name, types[name], typ)
		}
	}
	for name := range sampled {
		text := helps[name]
		switch {
		case text == "":
			t.Errorf("%s has no # HELP text", name)
		case strings.HasPrefix(name, "wsrelay_") && text == fallbackHelp:
			t.Errorf("%s has no description of its own: add one to help in stats/exposition.go", name)
		}
		if strings.HasSuffix(name, "_total") && types[name] != "counter" {
			t.Errorf("%s ends in _total but is a %s", name, types[name])
		}
	}
}

// TestWritePrometheusPassesPromtool runs Prometheus's own linter on the
// exposition when promtool is installed (Debian: prometheus); CI checks a
// running binary the same way in deploy/check.sh.
func TestWritePrometheusPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	s := New(vm.NewSet(), 10)
	var out bytes.Buffer
	WritePrometheus(&out, s.Set)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &out
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, msg)
	}
}
