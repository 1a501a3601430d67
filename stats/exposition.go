package stats

import (
	"bytes"
	"io"
	"strings"

	vm "github.com/VictoriaMetrics/metrics"
)

// help describes every wsrelay series (docs/protocol.md sections 6 to 12) and the
// process and Go runtime series operators look at first. A wsrelay series
// registered anywhere needs its line here: a test fails otherwise.
var help = map[string]string{
	"wsrelay_connections":                       "Open WebSocket connections (relay and echo).",
	"wsrelay_rooms":                             "Rooms with at least one member on this node.",
	"wsrelay_connections_accepted_total":        "WebSocket upgrades accepted.",
	"wsrelay_connections_rejected_total":        "WebSocket upgrades refused, by reason.",
	"wsrelay_messages_received_total":           "Messages read from clients, by kind.",
	"wsrelay_messages_delivered_total":          "Messages handed to a recipient's send queue.",
	"wsrelay_messages_dropped_total":            "Messages discarded instead of delivered, by reason.",
	"wsrelay_messages_discarded_at_close_total": "Frames still queued when their connection closed.",
	"wsrelay_http_timeouts_total":               "Sockets closed for not completing an HTTP request within the handshake timeout.",
	"wsrelay_bytes_received_total":              "Bytes read from WebSocket clients, frame headers included.",
	"wsrelay_bytes_sent_total":                  "Bytes written to WebSocket clients, frame headers included.",
	"wsrelay_evictions_total":                   "Connections closed by the server, by reason.",
	"wsrelay_errors_total":                      "Error messages sent to clients, by protocol error code.",
	"wsrelay_fanout_size":                       "Recipients of each routed message on this node.",
	"wsrelay_cluster_connected":                 "1 while this node is connected to the cluster's NATS server, 0 otherwise.",
	"wsrelay_flow_pauses_total":                 "Times a sender's socket stopped being read because a recipient fell behind.",
	"wsrelay_flow_paused_connections":           "Connections whose socket is not being read because of flow control.",
	"wsrelay_flow_paused_seconds_total":         "Time connections spent paused by flow control, summed.",
	"wsrelay_sessions_detached":                 "Sessions waiting for their client to resume.",
	"wsrelay_sessions_resumed_total":            "Sessions resumed by a new connection.",
	"wsrelay_sessions_expired_total":            "Detached sessions ended because their resume window passed.",
	"wsrelay_sessions_resume_failed_total":      "Resume requests answered with a new session or refused (401).",
	"wsrelay_compression_saved_bytes_total":     "Bytes not sent thanks to permessage-deflate.",
	"wsrelay_api_requests_total":                "Server API requests, by call and answer status.",

	"go_goroutines":                      "Goroutines that currently exist.",
	"go_threads":                         "OS threads created by the Go runtime.",
	"go_gc_duration_seconds":             "Pause durations of garbage collections.",
	"go_memstats_alloc_bytes":            "Bytes of allocated heap objects.",
	"go_memstats_heap_inuse_bytes":       "Bytes in in-use heap spans.",
	"go_memstats_sys_bytes":              "Bytes of memory obtained from the OS.",
	"go_info":                            "Go version the binary was built with.",
	"process_cpu_seconds_total":          "User and system CPU time spent, in seconds.",
	"process_resident_memory_bytes":      "Resident memory size, in bytes.",
	"process_virtual_memory_bytes":       "Virtual memory size, in bytes.",
	"process_open_fds":                   "Open file descriptors.",
	"process_max_fds":                    "Limit on open file descriptors.",
	"process_start_time_seconds":         "Start time of the process since the Unix epoch, in seconds.",
	"process_num_threads":                "OS threads in the process.",
	"process_resident_memory_anon_bytes": "Resident anonymous memory, in bytes.",
}

// counterFamilies are process series that VictoriaMetrics/metrics declares as
// gauges although they only grow (cumulative /proc/self/io counts).
var counterFamilies = map[string]bool{
	"process_io_read_bytes_total":            true,
	"process_io_written_bytes_total":         true,
	"process_io_read_syscalls_total":         true,
	"process_io_write_syscalls_total":        true,
	"process_io_storage_read_bytes_total":    true,
	"process_io_storage_written_bytes_total": true,
}

// dropped are runtime series of VictoriaMetrics/metrics whose names break
// Prometheus's naming rules (a counter without _total, a gauge named _count);
// they are left out so that the exposition passes promtool's lint. Nothing
// wsrelay's users need is among them (go_gomaxprocs gives the CPU count).
var dropped = map[string]bool{
	"go_cgo_calls_count": true,
	"go_cpu_count":       true,
	"go_gc_forced_count": true,
}

// fallbackHelp describes a process or Go runtime series without a line in help.
const fallbackHelp = "Process or Go runtime statistic (github.com/VictoriaMetrics/metrics)."

// WritePrometheus writes every series of set, then the process and Go runtime
// series, in the Prometheus text format (version 0.0.4), with one # HELP and
// one # TYPE line per metric family. The types are the ones
// VictoriaMetrics/metrics knows for each metric; the descriptions come from
// this package. It turns on the library's metadata switch, which is
// process-wide. Safe for concurrent use; it buffers the whole exposition, as
// the library does, and is meant for the /metrics endpoint, not a hot path.
func WritePrometheus(w io.Writer, set *vm.Set) {
	vm.ExposeMetadata(true)
	var raw bytes.Buffer
	set.WritePrometheus(&raw)
	vm.WriteProcessMetrics(&raw)
	out := bytes.NewBuffer(make([]byte, 0, raw.Len()+raw.Len()/4))
	for line := range strings.Lines(raw.String()) {
		if dropped[family(line)] {
			continue
		}
		switch {
		case strings.HasPrefix(line, "# HELP "):
			family := strings.TrimSpace(line[len("# HELP "):])
			if strings.IndexByte(family, ' ') >= 0 { // already described
				out.WriteString(line)
				continue
			}
			text, ok := help[family]
			if !ok {
				text = fallbackHelp
			}
			out.WriteString("# HELP " + family + " " + text + "\n")
		case strings.HasPrefix(line, "# TYPE "):
			family, typ, _ := strings.Cut(strings.TrimSpace(line[len("# TYPE "):]), " ")
			if typ == "gauge" && counterFamilies[family] {
				typ = "counter"
			}
			out.WriteString("# TYPE " + family + " " + typ + "\n")
		default:
			out.WriteString(line)
		}
	}
	_, _ = w.Write(out.Bytes())
}

// family returns the metric family a line of the exposition belongs to: the
// name after # HELP or # TYPE, or a sample's name. (No family in dropped has
// a histogram or summary suffix, so a sample's name is enough here.)
func family(line string) string {
	if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
		line = rest
	} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
		line = rest
	}
	if i := strings.IndexAny(line, "{ \n"); i >= 0 {
		return line[:i]
	}
	return line
}
