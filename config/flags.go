package config

import (
	"flag"
	"fmt"
	"io"
)

// Flags is wsrelay's command line. Each flag is accepted as -name or --name.
type Flags struct {
	Verbose     bool // --verbose: log level debug
	Quiet       bool // --quiet: log level warn
	PrintConfig bool // --print-config: print the effective configuration and exit
	Version     bool // --version: print the version and exit
}

// ParseFlags parses args, the command line without the program name
// (os.Args[1:]). Parse errors and usage go to stderr. It returns flag.ErrHelp
// for -h or --help, and an error for an unknown flag or a positional argument;
// main should exit with status 2 on any other error.
func ParseFlags(args []string, stderr io.Writer) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet("wsrelay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.Verbose, "verbose", false, "log at level debug (overrides WSRELAY_LOG_LEVEL)")
	fs.BoolVar(&f.Quiet, "quiet", false, "log at level warn (overrides WSRELAY_LOG_LEVEL)")
	fs.BoolVar(&f.PrintConfig, "print-config", false, "print the effective configuration, secrets masked, and exit")
	fs.BoolVar(&f.Version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: wsrelay [--verbose | --quiet] [--print-config] [--version]\n"+
			"       wsrelay healthcheck\n\n"+
			"wsrelay is configured through WSRELAY_* environment variables; see --print-config.\n"+
			"wsrelay healthcheck GETs /health from the relay at WSRELAY_ADDR on this host and\n"+
			"exits 0 on 200, 1 otherwise (for container health checks).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Flags{}, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		return Flags{}, err
	}
	return f, nil
}

// ApplyFlags lets the command line override the environment: --verbose sets
// LogLevel "debug", --quiet sets "warn"; --verbose wins when both are given.
func (c *Config) ApplyFlags(f Flags) {
	switch {
	case f.Verbose:
		c.LogLevel = "debug"
	case f.Quiet:
		c.LogLevel = "warn"
	}
}
