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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/cluster"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/loop"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
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
	srv, err := wire(cfg, log)
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

// wire builds a server from cfg: the one metrics set, the counters, the
// authenticator, the router, the cluster link when WSRELAY_NATS_URL is set,
// the protocol (with the room-token checker), the server API when
// WSRELAY_API_KEY is set and the transport. It does not listen yet.
// internal/relaytest wires test servers the same way.
func wire(cfg config.Config, log *slog.Logger) (*loop.Server, error) {
	authn, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	roomTokens, err := auth.NewRoomTokens(cfg)
	if err != nil {
		return nil, err
	}
	set := vm.NewSet()
	st := stats.New(set, cfg.MaxClients)
	rt := router.New(router.Options{
		MaxRoomsPerPeer: cfg.MaxRoomsPerPeer,
		MaxRoomPeers:    cfg.MaxRoomPeers,
		AllowBroadcast:  cfg.AllowBroadcast,
	}, st)
	var cl *cluster.Cluster
	if cfg.NATSURL != "" {
		cl, err = cluster.New(cluster.Config{URL: cfg.NATSURL, NodeID: cfg.NodeID, Prefix: cfg.NATSPrefix}, rt, st, log)
		if err != nil {
			return nil, err
		}
		rt.SetBackplane(cl)
		set.NewGauge("wsrelay_cluster_connected", func() float64 {
			if cl.Connected() {
				return 1
			}
			return 0
		})
	}
	sess := session.New(session.ConfigFrom(cfg, version), session.Deps{
		Router: rt, Stats: st, Metrics: set, Logger: log, RoomTokens: roomTokens,
	})
	if cl != nil {
		// A resume may land on any node: the one holding the session hands
		// it over through NATS.
		sess.SetRemote(cl)
		cl.ServeSessions(sess)
	}
	var serverAPI http.Handler // a nil *api.Handler would not be a nil interface
	if cfg.APIKey != "" {
		serverAPI = api.New(api.Config{Key: cfg.APIKey, MaxBodyBytes: cfg.MaxMessageBytes},
			api.Deps{Router: rt, Metrics: set, Logger: log})
	}
	return loop.New(cfg, loop.Deps{
		Logger: log, Metrics: set, Stats: st, Auth: authn,
		Session: sess, API: serverAPI, Cluster: cl,
	})
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
