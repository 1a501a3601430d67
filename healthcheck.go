package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wsrelay/wsrelay/config"
)

// healthcheckTimeout bounds the whole probe: connect, request and answer.
const healthcheckTimeout = 3 * time.Second

// healthcheck is `wsrelay healthcheck`: it GETs /health from the relay this
// environment configures (WSRELAY_ADDR, on loopback when the address names
// no host or a wildcard one) and returns 0 on 200, 1 otherwise, 2 on a bad
// invocation. It is meant for container HEALTHCHECKs in images that have no
// shell or curl. With TLS configured it speaks https without verifying the
// certificate: it checks that this host's relay answers, not who it is.
func healthcheck(args, environ []string, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "wsrelay healthcheck: takes no arguments, got %q\n", args[0])
		return 2
	}
	cfg, err := config.Load(environ)
	if err != nil {
		fmt.Fprintf(stderr, "wsrelay healthcheck: %v\n", err)
		return 1
	}
	url := healthURL(cfg.Addr, cfg.TLSCertFile != "")
	client := &http.Client{
		Timeout: healthcheckTimeout,
		Transport: &http.Transport{
			// Never through a proxy: this is a local probe. No certificate
			// check: it asks whether this host's relay answers (see above).
			Proxy:             nil,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "wsrelay healthcheck: %v\n", err)
		return 1
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "wsrelay healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "wsrelay healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}

// healthURL is the /health URL for a listen address: a wildcard or empty
// host becomes 127.0.0.1, a named host is kept.
func healthURL(addr string, tls bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/health"
}
