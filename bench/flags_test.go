package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRateFlag(t *testing.T) {
	t.Run("help", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := run([]string{"-h"}, &out, &errb); code != 0 {
			t.Fatalf("-h: exit %d", code)
		}
		help := errb.String()
		if !strings.Contains(help, "-rate") || strings.Contains(help, "(default -1)") {
			t.Errorf("-rate help shows a meaningless default:\n%s", help)
		}
	})
	for _, tc := range []struct {
		arg  string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"2500", 2500, true},
		{"-1", 0, false},
		{"fast", 0, false},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			rate := -1.0
			err := (&rateFlag{&rate}).Set(tc.arg)
			if (err == nil) != tc.ok || tc.ok && rate != tc.want {
				t.Errorf("Set(%q): rate %v, err %v", tc.arg, rate, err)
			}
		})
	}
}

// TestUsageListsEveryScenario checks that -h names every scenario and the
// resume scenario's flags.
func TestUsageListsEveryScenario(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	help := errb.String()
	for name := range scenarios {
		if !strings.Contains(help, "\n  "+name+" ") {
			t.Errorf("usage does not describe scenario %q", name)
		}
	}
	for _, flag := range []string{"-peers", "-room-size", "-cut", "-outage", "-detach"} {
		if !strings.Contains(help, "  "+flag+" ") || !strings.Contains(help, "resume: ") {
			t.Errorf("usage does not show the resume flag %s", flag)
		}
	}
}
