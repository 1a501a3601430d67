package main

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/config"
)

func TestHealthcheck(t *testing.T) {
	cfg, err := config.Load([]string{"WSRELAY_ADDR=127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wire(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Addr().String())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(sick.Close)

	cases := []struct {
		name string
		args []string
		addr string
		want int
		msg  string
	}{
		{"running relay, wildcard host", nil, ":" + port, 0, ""},
		{"running relay, loopback", nil, "127.0.0.1:" + port, 0, ""},
		{"nothing listening", nil, closed, 1, "connection refused"},
		{"not healthy", nil, strings.TrimPrefix(sick.URL, "http://"), 1, "503"},
		{"extra argument", []string{"now"}, ":" + port, 2, "no arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"healthcheck"}, tc.args...)
			code := run(args, []string{"WSRELAY_ADDR=" + tc.addr}, &out, &errb)
			if code != tc.want || !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.want, errb.String(), tc.msg)
			}
		})
	}
}

func TestHealthURL(t *testing.T) {
	cases := []struct {
		addr string
		tls  bool
		want string
	}{
		{":8080", false, "http://127.0.0.1:8080/health"},
		{"0.0.0.0:9000", false, "http://127.0.0.1:9000/health"},
		{"[::]:9000", true, "https://127.0.0.1:9000/health"},
		{"10.1.2.3:8080", false, "http://10.1.2.3:8080/health"},
		{"[::1]:8443", true, "https://[::1]:8443/health"},
	}
	for _, tc := range cases {
		if got := healthURL(tc.addr, tc.tls); got != tc.want {
			t.Errorf("healthURL(%q, %v) = %q, want %q", tc.addr, tc.tls, got, tc.want)
		}
	}
}
