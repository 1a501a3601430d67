package client_test

import (
	"log"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// startRelay runs a relay in the process on a free port of 127.0.0.1,
// wired as the wsrelay command wires it and configured by the WSRELAY_*
// assignments in env, and returns its WebSocket URL and the func that stops
// it. The runnable examples use it where users would name a deployed
// relay's URL.
func startRelay(env ...string) (url string, stop func()) {
	cfg, err := config.Load(append([]string{"WSRELAY_ADDR=127.0.0.1:0"}, env...))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := relaytest.Wire(cfg, relaytest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	return "ws://" + srv.Addr().String() + "/ws", srv.Close
}
