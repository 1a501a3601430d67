// Command bench is wsrelay's load harness: it opens many WebSocket
// connections, drives one scenario (idle, fanout, binary, api, direct,
// slow, burst, churn, resume, cluster) and reports what the relay cost and
// how fast it delivered.
//
//	go run ./bench [flags] SCENARIO
//
// By default it builds wsrelay from this module and starts it as a child
// process on a free loopback port, reading the server's memory and CPU time
// from /proc; with -url it targets a running relay and reads /metrics and
// /stats instead; the cluster scenario starts an embedded NATS server and
// several nodes. Client connections live in -procs worker processes (the
// harness re-executes itself), each an nbio event loop with one poller, so
// one process holds tens of thousands of connections with a few goroutines.
//
// Each run prints a one-line summary, with -json also one JSON object per
// line on stdout, and with -report FILE.html a self-contained page with the
// latency distribution and the server's memory over time. See BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/loop"
)

func main() {
	quietEngineLogs()
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(runWorker())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the flags of one run.
type options struct {
	url, server string
	env         envList
	procs       int
	dialers     int
	bind        []string // local addresses the clients dial from
	json        bool
	report      string
	quiet       bool
	inproc      bool   // run the relay inside the harness process (for profiles)
	cpuprofile  string // CPU profile of the measured phase (with -inproc)
	memprofile  string // heap profile at the end of the measured phase (with -inproc)

	conns, rooms int           // idle
	hold         time.Duration // idle
	ping         time.Duration // idle: PING_INTERVAL of a started server

	members, messages, size int     // fanout, binary, slow
	rate                    float64 // messages per second (0: as fast as possible for fanout)
	binary                  bool

	pairs    int           // direct
	duration time.Duration // direct, slow, churn

	slow int // slow: members that never read

	compress bool   // offer permessage-deflate; a started server accepts it
	payload  string // filler of timed JSON payloads: x or json

	churnRate float64       // churn: connections per second
	life      time.Duration // churn: lifetime of a churning connection
	rounds    int           // churn: rounds of churn, each followed by a reading

	peers    int           // resume: sessions
	roomSize int           // resume: peers per room
	cut      float64       // resume: share of the connections cut every second
	outage   time.Duration // resume: how long a cut connection stays away
	detach   float64       // resume: share of the sessions detached at once for the memory reading

	nodes       int // cluster: wsrelay nodes
	roomMembers int // cluster: members of the room spanning all nodes, the publisher included
}

type envList []string

func (e *envList) String() string     { return strings.Join(*e, ",") }
func (e *envList) Set(v string) error { *e = append(*e, v); return nil }

// rateFlag is -rate: messages per second, or unset (negative) for the
// scenario's default. Unset prints as empty, so the usage shows no
// meaningless "(default -1)".
type rateFlag struct{ rate *float64 }

func (f *rateFlag) String() string {
	if f.rate == nil || *f.rate < 0 {
		return ""
	}
	return strconv.FormatFloat(*f.rate, 'g', -1, 64)
}

func (f *rateFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return errors.New("want messages per second, 0 or more")
	}
	*f.rate = v
	return nil
}

const usage = `usage: go run ./bench [flags] SCENARIO

Scenarios:
  idle     N idle connections over rooms: server bytes per connection,
           goroutines, handshake rate, heartbeat CPU over a hold period
  fanout   one room of N members, a publisher sends M messages: time until
           all delivered, deliveries/s, server CPU-s per million deliveries,
           latency p50/p99/p999, peak RSS
  binary   fanout with binary frames
  api      fanout with a backend publishing through the server API
           (POST /api/publish): API calls answered per second besides
           fanout's figures
  direct   P pairs exchanging direct messages at a fixed total rate:
           latency and loss
  slow     normal members plus members that never read, a flood of 1 KiB
           messages: RSS growth, drops by reason, normal members' latency
           against a run without slow members
  burst    one publisher writes M messages as fast as it can to a room of
           readers and members that never read (flow control, docs/protocol.md
           section 9): delivered/expected for readers, drops, pauses,
           publisher time, peak RSS; -env WSRELAY_FLOW_CONTROL=false for v1
  churn    connections come and go at a fixed rate while direct messages
           flow: errors, goroutines and memory before and after
  resume   peers in rooms under a steady stream of messages while a share of
           the connections is cut every second (no close frame) and resumed
           (docs/protocol.md section 10): messages lost and duplicated,
           resume time p50/p99, resumed:false, missed, and the server's
           memory while a batch of sessions is detached and after
  cluster  an embedded NATS server and N nodes, connections spread over them,
           one room spanning every node and a publisher on the first:
           cross-node deliveries/s, CPU-s per million deliveries (all nodes),
           latency p50/p99, RSS per connection, every delivery accounted for

Flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "", "target a running relay (ws://host:port/ws) instead of starting one")
	fs.StringVar(&o.server, "server", "", "wsrelay binary to start (default: build this module)")
	fs.Var(&o.env, "env", "extra WSRELAY_*=value for the started server (repeatable)")
	fs.IntVar(&o.procs, "procs", 0, "client worker processes (0: one per 15,000 connections)")
	fs.IntVar(&o.dialers, "dialers", 128, "handshakes in flight per worker")
	bind := fs.String("bind", "", "comma-separated local addresses to dial from, round robin (more than ~28,000 connections\nto one server address need several, e.g. 127.0.0.2,127.0.0.3)")
	fs.BoolVar(&o.json, "json", false, "also print one JSON line per run on stdout")
	fs.StringVar(&o.report, "report", "", "write a self-contained HTML report to this file")
	fs.BoolVar(&o.quiet, "q", false, "no progress bar")
	fs.BoolVar(&o.inproc, "inproc", false, "run the relay inside the harness process instead of a child (for -cpuprofile, -memprofile)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured phase to this file (needs -inproc)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile at the end of the measured phase to this file (needs -inproc)")
	fs.IntVar(&o.conns, "conns", 0, "idle: connections (default 15000); cluster: connections over all nodes (default 100000)")
	fs.IntVar(&o.rooms, "rooms", 0, "idle, cluster: rooms to spread the (other) connections over (0: one per 10 connections; -1: none, the connections send nothing)")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "idle: how long to hold the connections while measuring heartbeat CPU;\nresume: how long the -detach batch stays away while messages flow, default 3s")
	fs.DurationVar(&o.ping, "ping", time.Second, "idle: PING_INTERVAL of the started server")
	fs.IntVar(&o.members, "members", 0, "fanout/binary/api: room members (default 10000); slow: normal members (default 200); burst: readers (default 100)")
	fs.IntVar(&o.messages, "messages", 200, "fanout/binary/api/cluster: messages to publish; burst: default 20000")
	fs.IntVar(&o.size, "size", 0, "payload bytes (default 64; slow: 1024; direct: 64)")
	o.rate = -1 // unset: each scenario's own default
	fs.Var(&rateFlag{&o.rate}, "rate", "messages per second, 0 = as fast as possible (default: fanout, binary, cluster 0;\ndirect 20000; slow 500; churn 2000; resume 1000 over all peers, more than 0)")
	fs.IntVar(&o.pairs, "pairs", 0, "direct: pairs of peers (default 2000); churn: steady pairs exchanging direct messages (default 500)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "direct, slow, churn, resume: how long traffic flows")
	fs.IntVar(&o.slow, "slow", 50, "slow: members that never read; burst: default 10")
	fs.Float64Var(&o.churnRate, "churn-rate", 200, "churn: new connections per second")
	fs.DurationVar(&o.life, "life", 2*time.Second, "churn: lifetime of each churning connection")
	fs.IntVar(&o.rounds, "rounds", 3, "churn: rounds of churn, the server read after each")
	fs.IntVar(&o.peers, "peers", 1000, "resume: peers, each a session")
	fs.IntVar(&o.roomSize, "room-size", 10, "resume: peers per room")
	fs.Float64Var(&o.cut, "cut", 0.05, "resume: share of the connections cut every second (TCP close without a close frame)")
	fs.DurationVar(&o.outage, "outage", 500*time.Millisecond, "resume: how long a cut connection stays away before it resumes")
	fs.Float64Var(&o.detach, "detach", 0.5, "resume: share of the sessions detached at once, after the cuts, to read the server's\nmemory while they are away (0: skip)")
	fs.IntVar(&o.nodes, "nodes", 6, "cluster: wsrelay nodes (child processes sharing an embedded NATS server)")
	fs.IntVar(&o.roomMembers, "room-members", 600, "cluster: members of the room spanning all nodes, the publisher included")
	fs.BoolVar(&o.compress, "compress", false, "every client connection offers permessage-deflate, and a started server runs with\nWSRELAY_COMPRESSION=true; compressed frames are counted and inflated as far as the timestamp")
	fs.StringVar(&o.payload, "payload", "x", "filler of JSON payloads: x (one repeated letter, compresses to nothing) or json\n(SDP-like text that compresses about as real signalling does)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *bind != "" {
		o.bind = strings.Split(*bind, ",")
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	scenario := fs.Arg(0)
	sc, ok := scenarios[scenario]
	if !ok {
		fmt.Fprintf(stderr, "bench: unknown scenario %q\n", scenario)
		fs.Usage()
		return 2
	}
	o.binary = scenario == "binary"
	if scenario == "burst" {
		// Defaults of the burst scenario: 20,000 x 1 KiB to 100 readers
		// and 10 members that never read.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["messages"] {
			o.messages = 20000
		}
		if !set["slow"] {
			o.slow = 10
		}
	}
	if scenario == "resume" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["hold"] {
			o.hold = 3 * time.Second
		}
	}
	if o.payload != "x" && o.payload != "json" {
		fmt.Fprintf(stderr, "bench: -payload must be x or json, got %q\n", o.payload)
		return 2
	}
	if o.compress {
		o.env = append(o.env, "WSRELAY_COMPRESSION=true")
	}
	if o.conns <= 0 {
		o.conns = map[bool]int{true: 100000, false: 15000}[scenario == "cluster"]
	}
	if (o.cpuprofile != "" || o.memprofile != "") && !o.inproc {
		fmt.Fprintln(stderr, "bench: -cpuprofile and -memprofile need -inproc (the relay runs in the harness process)")
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	r := &runner{o: o, scenario: scenario, out: stderr, res: &result{Scenario: scenario, Fields: map[string]any{}}}
	if err := r.setup(sc.env(&o)); err != nil {
		if r.t != nil || r.nats != nil {
			_ = r.teardown()
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	err := sc.run(ctx, r)
	if terr := r.teardown(); err == nil {
		err = terr
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %s: %v\n", scenario, err)
		return 1
	}
	r.finish(stdout)
	if o.report != "" {
		if err := writeReport(o.report, r); err != nil {
			fmt.Fprintf(stderr, "bench: report: %v\n", err)
			return 1
		}
	}
	return 0
}

// result is what a run measured.
type result struct {
	Scenario string
	Summary  string
	Fields   map[string]any
	Hist     *histogram // delivery latency, when measured
	Hist0    *histogram // slow: latency of the run without slow members
	Samples  []sample
	Start    time.Time
}

func (r *result) set(k string, v any) { r.Fields[k] = v }

// percentiles are the quantiles a result reports, by name.
var percentiles = map[string]float64{"p50": 0.5, "p99": 0.99, "p999": 0.999}

// setLatency sets the fields prefix+name+"_ms" to h's percentiles by name
// ("p50", "p99", "p999") in milliseconds.
func (r *result) setLatency(prefix string, h *histogram, names ...string) {
	for _, name := range names {
		q, ok := percentiles[name]
		if !ok {
			panic("bench: no percentile " + name)
		}
		r.set(prefix+name+"_ms", ms(h.quantile(q)))
	}
}

// loadAvg returns the 1-minute load average of the machine.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *runner) finish(stdout io.Writer) {
	res := r.res
	res.set("load_avg", loadAvg())
	res.set("server", map[bool]string{true: "child", false: r.o.url}[r.t.pid != 0])
	res.set("compress", r.o.compress)
	res.set("payload", r.o.payload)
	fmt.Fprintf(stdout, "%s: %s (load %s)\n", res.Scenario, res.Summary, loadAvg())
	if r.o.json {
		m := map[string]any{"scenario": res.Scenario, "time": res.Start.UTC().Format(time.RFC3339)}
		for k, v := range res.Fields {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		fmt.Fprintln(stdout, string(b))
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quietEngineLogs sends nbio's log lines, warnings and errors only, to
// stderr: stdout carries the results, and a worker's stdout its replies.
func quietEngineLogs() {
	loop.RouteEngineLogs(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
