// Command wsrelay is a WebSocket relay for peer-to-peer applications.
//
// It is configured through WSRELAY_* environment variables (see README.md
// and docs/protocol.md). main only wires the packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/loop"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" { // before ParseFlags, which refuses arguments
		return healthcheck(args[1:], environ, stderr)
	}
	flags, err := config.ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if flags.Version {
		fmt.Fprintf(stdout, "wsrelay %s\n", version)
		return 0
	}
	cfg, err := config.Load(environ)
	if err != nil {
		fmt.Fprintf(stderr, "wsrelay: %v\n", err)
		return 2
	}
	cfg.ApplyFlags(flags)
	if flags.PrintConfig {
		cfg.Print(stdout)
		return 0
	}
	log := cfg.Logger(stderr)
	loop.RouteEngineLogs(log)
	srv, err := loop.New(cfg, loop.Options{Logger: log, Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "wsrelay: %v\n", err)
		return 2
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "wsrelay: %v\n", err)
		return 1
	}
	if cfg.Demo {
		log.Info("demo page", "url", demoURL(srv.Addr(), cfg.TLSCertFile != ""))
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	got := <-sig
	signal.Stop(sig)
	log.Info("signal received, draining", "signal", got.String(), "timeout", cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown timed out; remaining connections closed", "err", err)
	}
	log.Info("stopped")
	return 0
}

// demoURL is where a browser on this host finds the demo page served on
// addr: a wildcard listen address (every interface) becomes localhost.
func demoURL(addr net.Addr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}
