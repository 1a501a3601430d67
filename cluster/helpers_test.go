package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/loop"
)

func TestMain(m *testing.M) {
	loop.RouteEngineLogs(slog.New(slog.DiscardHandler))
	// Every goroutine of the relays, their cluster links and the embedded
	// NATS servers must be gone once the tests closed them.
	goleak.VerifyTestMain(m)
}

// startNATS runs an embedded NATS server on 127.0.0.1:port (0: any free
// port) until the test ends or stopNATS.
func startNATS(t testing.TB, port int) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { stopNATS(ns) })
	return ns
}

func stopNATS(ns *natsserver.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

func natsURL(ns *natsserver.Server) string {
	return "nats://" + ns.Addr().String()
}

func natsPort(ns *natsserver.Server) int {
	return ns.Addr().(*net.TCPAddr).Port
}

// node is one wsrelay node of a test cluster.
type node struct {
	*relaytest.Server
	id string
}

// startNode runs a relay on 127.0.0.1:0 in the cluster at url, with
// broadcast on and rate limiting off, plus env.
func startNode(t testing.TB, url, id string, env ...string) *node {
	t.Helper()
	s := relaytest.Start(t, append([]string{
		"WSRELAY_WORKERS=1", "WSRELAY_ALLOW_BROADCAST=true",
		"WSRELAY_RATE_MSGS=0", "WSRELAY_NATS_URL=" + url, "WSRELAY_NODE_ID=" + id,
		"WSRELAY_NATS_SUBJECT_PREFIX=" + strings.ReplaceAll(t.Name(), "/", "_"),
	}, env...)...)
	return &node{Server: s, id: id}
}

// startCluster starts a NATS server and n nodes n1..nN that see each other.
func startCluster(t testing.TB, n int) (*natsserver.Server, []*node) {
	t.Helper()
	ns := startNATS(t, 0)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, natsURL(ns), "n"+strconv.Itoa(i+1))
	}
	waitMesh(t, nodes...)
	return ns, nodes
}

// roomAcross starts a cluster of two nodes with peer a on the first and
// peer b on the second, both in room "r", and returns once a has seen b
// join.
func roomAcross(t testing.TB, a, b string) (n1, n2 *node, ca, cb *client.Client) {
	t.Helper()
	_, nodes := startCluster(t, 2)
	n1, n2 = nodes[0], nodes[1]
	ca = n1.Dial(a)
	relaytest.Join(t, ca, "r")
	cb = n2.Dial(b)
	relaytest.Join(t, cb, "r")
	relaytest.Recv(t, ca, "peer_joined")
	return n1, n2, ca, cb
}

// waitMesh waits until every node hears from every other.
func waitMesh(t testing.TB, nodes ...*node) {
	t.Helper()
	relaytest.Eventually(t, 5*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			if n.Cluster.Nodes() != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// waitPeer waits until every node in others knows where peer is connected.
func waitPeer(t *testing.T, peer string, on *node, others ...*node) {
	t.Helper()
	relaytest.Eventually(t, 5*time.Second, peer+" known on every node", func() bool {
		for _, n := range others {
			if n.Cluster.PeerNode(peer) != on.id {
				return false
			}
		}
		return true
	})
}

func (n *node) get(path string) (int, string) {
	n.T.Helper()
	code, _, body := n.Get(path)
	return code, body
}

// clusterGauge returns the value of wsrelay_cluster_connected on /metrics.
func (n *node) clusterGauge() string {
	n.T.Helper()
	_, body := n.get("/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "wsrelay_cluster_connected "); ok {
			return strings.TrimSpace(v)
		}
	}
	n.T.Fatalf("no wsrelay_cluster_connected in /metrics")
	return ""
}

// proxy is a TCP proxy in front of a NATS server: cutting it kills every
// connection through it at once, as a crashed host would, and refuses new
// ones; stalling it stops reading what its clients send, as a NATS server
// whose socket stalls would.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	resumed *sync.Cond // signalled by resume
	stalled bool
	bytes   int64 // forwarded from clients since stall
	conns   []net.Conn
}

// startProxy runs a proxy to target on 127.0.0.1:0 until the test ends or
// cut.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveProxy(t, ln, target)
}

// startStallProxy is startProxy with a small receive buffer on the
// accepted sockets: once stalled, a client's writes back up after a few
// kilobytes until they block.
func startStallProxy(t *testing.T, target string) *proxy {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveProxy(t, ln, target)
}

func serveProxy(t *testing.T, ln net.Listener, target string) *proxy {
	t.Helper()
	p := &proxy{ln: ln, target: target}
	p.resumed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(out, in, true)
		go p.pipe(in, out, false)
	}
}

// pipe copies src to dst until either side fails, then closes both. The
// upstream pipe, from a client to NATS, waits while the proxy is stalled
// and counts what it forwards.
func (p *proxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 4096)
	for {
		if upstream {
			p.mu.Lock()
			for p.stalled {
				p.resumed.Wait()
			}
			p.mu.Unlock()
		}
		n, err := src.Read(buf)
		if n > 0 {
			if upstream {
				p.mu.Lock()
				p.bytes += int64(n)
				p.mu.Unlock()
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stall stops reading from the clients until resume, and restarts the
// count of forwarded bytes.
func (p *proxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.bytes = 0
	p.mu.Unlock()
}

func (p *proxy) resume() {
	p.mu.Lock()
	p.stalled = false
	p.mu.Unlock()
	p.resumed.Broadcast()
}

// forwarded returns the bytes forwarded from the clients since stall.
func (p *proxy) forwarded() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// cut closes the listener and every proxied connection, and waits for the
// proxy's goroutines. It may be called more than once.
func (p *proxy) cut() {
	p.ln.Close()
	p.resume()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func sprint(v ...any) string { return fmt.Sprint(v...) }
