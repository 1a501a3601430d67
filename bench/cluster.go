package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// The cluster scenario: an embedded NATS server in the harness process and
// -nodes wsrelay child processes connected to it, -conns connections spread
// evenly over the nodes, one room whose -room-members members are spread
// over every node, and a publisher on the first node whose messages reach
// the members on the other nodes through NATS.

// startNATS runs a NATS server inside the harness on a free loopback port,
// without disk (no JetStream) and without logs.
func startNATS() (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		NoLog: true, NoSigs: true, MaxPayload: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats server not ready in 10 s")
	}
	return ns, nil
}

// nodeEnv is the cluster part of node i's environment.
func nodeEnv(ns *natsserver.Server, i int) []string {
	return []string{"WSRELAY_NATS_URL=nats://" + ns.Addr().String(), fmt.Sprintf("WSRELAY_NODE_ID=node-%d", i)}
}

// setupCluster starts NATS and the first node (the runner's target); the
// scenario starts the other nodes with the same binary.
func (r *runner) setupCluster(env []string) error {
	if r.o.url != "" || r.o.inproc {
		return fmt.Errorf("the cluster scenario starts its own nodes: -url and -inproc do not apply")
	}
	if r.o.nodes < 1 {
		return fmt.Errorf("-nodes must be at least 1")
	}
	ns, err := startNATS()
	if err != nil {
		return err
	}
	r.nats = ns
	r.t, err = startServer(r.o.server, append(append(env, nodeEnv(ns, 0)...), r.o.env...))
	return err
}

// nodeBinary is the wsrelay binary the first node runs.
func (r *runner) nodeBinary() string {
	if r.o.server != "" {
		return r.o.server
	}
	return filepath.Join(r.t.dir, "wsrelay")
}

// allNodes returns every node, the first one first.
func (r *runner) allNodes() []*target { return append([]*target{r.t}, r.nodes...) }

// nodeStats reads /stats of every node.
func nodeStats(nodes []*target) ([]serverStats, error) {
	out := make([]serverStats, len(nodes))
	for i, n := range nodes {
		s, err := n.stats()
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}

// readAll samples every node; the sums of RSS and CPU are what the cluster
// cost.
func readAll(nodes []*target) (rss int64, cpu float64, per []sample) {
	for _, n := range nodes {
		s, _ := n.read()
		per = append(per, s)
		rss += s.RSS
		cpu += s.CPU
	}
	return rss, cpu, per
}

// settleAll waits until every node's RSS settled.
func settleAll(ctx context.Context, nodes []*target, limit time.Duration) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.settle(ctx, limit) }()
	}
	wg.Wait()
}

// quietAll waits until the nodes' messages_out, summed, stays unchanged for
// a second (presence notifications delivered), at most limit.
func quietAll(ctx context.Context, nodes []*target, limit time.Duration) {
	end := time.Now().Add(limit)
	var last int64 = -1
	for time.Now().Before(end) && ctx.Err() == nil {
		st, err := nodeStats(nodes)
		if err != nil {
			return
		}
		var out int64
		for _, s := range st {
			out += s.MessagesOut
		}
		if out == last {
			return
		}
		last = out
		time.Sleep(time.Second)
	}
}

// selfCPU is the harness process's CPU time (the embedded NATS server and
// the publisher), in seconds.
func selfCPU() float64 {
	t := &target{pid: os.Getpid()}
	s, err := t.read()
	if err != nil {
		return 0
	}
	return s.CPU
}

// spread divides n over k parts as evenly as possible.
func spread(n, k, i int) int {
	c := n / k
	if i < n%k {
		c++
	}
	return c
}

func runCluster(ctx context.Context, r *runner) error {
	o, res := r.o, r.res
	nodes := o.nodes
	size := o.size
	if size <= 0 {
		size = 64
	}
	rate := max(o.rate, 0)
	members := o.roomMembers // including the publisher
	if members < 2 {
		return fmt.Errorf("-room-members must be at least 2 (the publisher and one member)")
	}
	if o.conns < members {
		return fmt.Errorf("-conns %d is less than -room-members %d", o.conns, members)
	}
	// Start the other nodes with the first one's binary.
	for i := 1; i < nodes; i++ {
		t, err := startServer(r.nodeBinary(), append(append(floodEnv(&o), nodeEnv(r.nats, i)...), o.env...))
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		t.startSampler(250 * time.Millisecond)
		r.nodes = append(r.nodes, t)
	}
	all := r.allNodes()
	// Wait until every node sees the others (the heartbeats come every
	// second; /stats is local, so give the presence snapshots a moment).
	time.Sleep(1500 * time.Millisecond)
	if err := r.workers(o.conns); err != nil {
		return err
	}
	settleAll(ctx, all, 3*time.Second)
	rss0, _, _ := readAll(all)
	st0, err := nodeStats(all)
	if err != nil {
		return err
	}

	// The room's members held by workers: all but the publisher, spread
	// evenly over the nodes; the rest of the connections are idle, in rooms
	// of 10 local to their node (-rooms -1: in no room).
	const room = "span"
	idle := o.conns - members
	connStart := time.Now()
	var connected int64
	stop := r.progress("connecting", func() float64 { return float64(connected) / float64(o.conns) })
	// Member counts: node 0 holds the publisher, so that the room's
	// members (the publisher included) are spread evenly.
	perNode := make([]int, nodes)
	for i := range perNode {
		perNode[i] = spread(members, nodes, i)
	}
	perNode[0]--
	for i, n := range all {
		cmds := []command{{Op: "connect", URL: n.host, Path: n.path, Prefix: fmt.Sprintf("m%d-", i), Count: perNode[i],
			Room: room, Dialers: o.dialers, Bind: o.bind}}
		ni := spread(idle, nodes, i)
		ic := command{Op: "connect", URL: n.host, Path: n.path, Prefix: fmt.Sprintf("i%d-", i), Count: ni,
			Dialers: o.dialers, Bind: o.bind}
		switch {
		case o.rooms < 0:
		case o.rooms == 0:
			ic.Room, ic.Rooms = fmt.Sprintf("n%d-r%%d", i), max(1, ni/10)
		default:
			ic.Room, ic.Rooms = fmt.Sprintf("n%d-r%%d", i), max(1, o.rooms/nodes)
		}
		cmds = append(cmds, ic)
		for _, c := range cmds {
			if c.Count == 0 {
				continue
			}
			rs, err := r.pool.split(c)
			t := sum(rs, nil)
			if err == nil && t.Failed > 0 {
				err = fmt.Errorf("node %d: %d of %d connections failed, first: %s", i, t.Failed, c.Count, t.FirstErr)
			}
			if err != nil {
				stop()
				return err
			}
			connected += int64(c.Count)
		}
	}
	stop()
	connTime := time.Since(connStart)
	pub, err := r.publisher("publisher", room)
	if err != nil {
		return err
	}
	quietAll(ctx, all, 5*time.Minute) // presence: joins and peer_joined notifications
	settleAll(ctx, all, 15*time.Second)
	rss1, _, perRSS := readAll(all)
	st1, err := nodeStats(all)
	if err != nil {
		return err
	}
	var held int64
	conns := make([]int64, nodes)
	gors := make([]int64, nodes)
	rssNode := make([]float64, nodes)
	for i, s := range st1 {
		held += s.Connections
		conns[i] = s.Connections
		gors[i] = s.Goroutines
		rssNode[i] = round(mib(perRSS[i].RSS), 1)
	}
	if held != int64(o.conns) {
		return fmt.Errorf("the nodes hold %d connections (%v), want %d", held, conns, o.conns)
	}

	// Fan-out.
	if _, err := r.pool.each(command{Op: "reset"}); err != nil {
		return err
	}
	s := &sender{w: pub, room: room, size: size, jsonFill: r.o.payload == "json"}
	want := int64(members-1) * int64(o.messages)
	_, cpu0, _ := readAll(all)
	self0 := selfCPU()
	start := time.Now()
	sending := publishAll(s, o.messages, rate)
	limit := 60*time.Second + time.Duration(float64(o.messages)/max(rate, 1)*float64(time.Second))
	if err := r.awaitDeliveries(ctx, want, start, limit); err != nil {
		return err
	}
	_, cpu1, _ := readAll(all)
	self1 := selfCPU()
	time.Sleep(500 * time.Millisecond) // anything beyond the expected count
	h := newHistogram()
	got, err := r.report(h)
	if err != nil {
		return err
	}
	if err := sending.Err(); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	st2, _ := nodeStats(all)
	var dropped, closedByServer int64
	for i := range st2 {
		dropped += st2[i].Dropped - st1[i].Dropped
	}
	closedByServer = got.Closed
	elapsed := time.Duration(got.LastRcv - start.UnixNano())
	deliveries := got.Recv
	cpu := cpu1 - cpu0
	remote := int64(members) - int64(spread(members, nodes, 0)) // members on other nodes than the publisher's
	perConn := float64(rss1-rss0) / float64(o.conns)
	res.Hist = h
	res.set("nodes", nodes)
	res.set("connections", held)
	res.set("connections_per_node", conns)
	res.set("room_members", members)
	res.set("room_members_remote", remote)
	res.set("idle_rooms", map[bool]string{true: "none", false: "rooms of 10, local to a node"}[o.rooms < 0])
	res.set("connect_s", round(connTime.Seconds(), 1))
	res.set("handshakes_per_s", round(float64(o.conns)/connTime.Seconds(), 0))
	res.set("messages", o.messages)
	res.set("payload_bytes", size)
	res.set("rate", rate)
	res.set("expected", want)
	res.set("deliveries", deliveries)
	res.set("lost", want-deliveries)
	res.set("dropped_reported", got.Dropped)
	res.set("dropped_by_nodes", dropped)
	res.set("closed_by_server", closedByServer)
	res.set("complete_s", round(elapsed.Seconds(), 3))
	res.set("deliveries_per_s", round(float64(deliveries)/elapsed.Seconds(), 0))
	res.set("server_cpu_s", round(cpu, 2))
	res.set("cpu_s_per_million", round(cpu/float64(max(deliveries, 1))*1e6, 2))
	res.set("harness_cpu_s", round(self1-self0, 2))
	res.setLatency("", h, "p50", "p99", "p999")
	res.set("max_ms", ms(time.Duration(h.max)))
	res.set("rss_base_mib", round(mib(rss0), 1))
	res.set("rss_loaded_mib", round(mib(rss1), 1))
	res.set("rss_mib_per_node", rssNode)
	res.set("rss_bytes_per_conn", round(perConn, 0))
	res.set("rss_total_bytes_per_conn", round(float64(rss1)/float64(o.conns), 0))
	res.set("goroutines_per_node", gors)
	var g0 []int64
	for _, s := range st0 {
		g0 = append(g0, s.Goroutines)
	}
	res.set("goroutines_per_node_before", g0)
	lost := want - deliveries
	res.Summary = fmt.Sprintf("%d nodes, %d conns %v, room of %d over all nodes (%d remote) × %d msgs (%d B): %d of %d delivered (lost %d) in %.3fs, %.0f deliveries/s, %.2f CPU-s/M deliveries (all nodes), p50 %.2fms p99 %.2fms, %.0f B RSS/conn (%.1f MiB in all), goroutines %v; dropped: %d by the nodes, %d in overflow notices; %d closed by a node",
		nodes, held, conns, members, remote, o.messages, size, deliveries, want, lost, elapsed.Seconds(),
		float64(deliveries)/elapsed.Seconds(), cpu/float64(max(deliveries, 1))*1e6,
		ms(h.quantile(0.5)), ms(h.quantile(0.99)), perConn, mib(rss1), gors, dropped, got.Dropped, closedByServer)
	// A delivery is accounted for when it arrived or when its recipient was
	// told it was dropped (an overflow notice: the recipient's queue was
	// full); anything else is lost.
	res.set("unaccounted", lost-got.Dropped)
	if lost != got.Dropped || closedByServer != 0 {
		return fmt.Errorf("not every delivery accounted for: %s", res.Summary)
	}
	return nil
}

// closeNodes stops the nodes beyond the first and the NATS server.
func (r *runner) closeNodes() {
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.close() }()
	}
	wg.Wait()
	r.nodes = nil
}

func (r *runner) closeNATS() {
	if r.nats != nil {
		r.nats.Shutdown()
		r.nats.WaitForShutdown()
		r.nats = nil
	}
}
