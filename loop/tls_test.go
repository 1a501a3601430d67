package loop_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
)

// testCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// returns the certificate and key files and a pool that trusts it.
func testCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsrelay test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// tlsServer is a testServer serving wss:// and https://.
type tlsServer struct {
	*relaytest.Server
	tlsConf *tls.Config // trusts the server's certificate
	https   *http.Client
}

func startTLSServer(t *testing.T, env ...string) *tlsServer {
	t.Helper()
	certFile, keyFile, pool := testCert(t)
	ts := relaytest.Start(t, append([]string{"WSRELAY_TLS_CERT_FILE=" + certFile, "WSRELAY_TLS_KEY_FILE=" + keyFile}, env...)...)
	addr := ts.Addr().String()
	ts.Base, ts.WS = "https://"+addr, "wss://"+addr+"/ws"
	conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr := &http.Transport{TLSClientConfig: conf}
	t.Cleanup(tr.CloseIdleConnections)
	return &tlsServer{Server: ts, tlsConf: conf, https: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

func (ts *tlsServer) dialWSS(peer string) *client.Client {
	ts.T.Helper()
	d := *websocket.DefaultDialer
	d.TLSClientConfig = ts.tlsConf
	c, err := client.Dial(relaytest.Ctx(ts.T, 5*time.Second), ts.WS, &client.Options{Peer: peer, Dialer: &d})
	if err != nil {
		ts.T.Fatalf("dial %q: %v", peer, err)
	}
	ts.T.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// rawTLSDial upgrades path over TLS and returns the connection, past the
// 101 response, for a peer that reads and writes raw frames.
func (ts *tlsServer) rawTLSDial(path string) *relaytest.RawConn {
	ts.T.Helper()
	addr := ts.Addr().String()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, ts.tlsConf)
	if err != nil {
		ts.T.Fatalf("tls dial: %v", err)
	}
	ts.T.Cleanup(func() { _ = tc.Close() })
	rc, err := relaytest.Upgrade(tc, addr, path)
	if err != nil {
		ts.T.Fatalf("upgrade: %v", err)
	}
	return rc
}

// TestTLSRelay: with a certificate configured, peers talk over wss://, the
// HTTP endpoints answer over https://, and a plain-text client gets nothing.
func TestTLSRelay(t *testing.T) {
	ts := startTLSServer(t)
	a, b := ts.dialWSS("a"), ts.dialWSS("b")
	if err := a.Direct("b", map[string]int{"n": 1}, 7); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, b, "direct"); m.From != "a" || string(m.Data) != `{"n":1}` {
		t.Fatalf("b got %s", m.Raw)
	}
	relaytest.Recv(t, a, "ack")
	// A large message spans several TLS records each way.
	big := strings.Repeat("y", 60000)
	if err := b.Direct("a", big, nil); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, a, "direct"); len(m.Data) != len(big)+2 {
		t.Fatalf("a got %d bytes of data", len(m.Data))
	}

	resp, err := ts.https.Get(ts.Base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https /health: %d", resp.StatusCode)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("want TLS 1.3, got %+v", resp.TLS)
	}

	// Plain HTTP on the TLS port: the server does not answer in clear text.
	nc, err := net.DialTimeout("tcp", ts.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _ = nc.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := nc.Read(buf)
	if strings.Contains(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatal("plain HTTP answered on the TLS port")
	}

	// Write accounting is exact over TLS: once everything was delivered,
	// nothing is in flight (were the TLS overhead not counted, in-flight
	// bytes would drift below zero and disable backpressure).
	for i := range 100 {
		if err := a.Direct("b", strings.Repeat("z", i*500), nil); err != nil {
			t.Fatal(err)
		}
		relaytest.Recv(t, b, "direct")
	}
	for _, id := range []string{"a", "b"} {
		pc := ts.Router.Lookup(id)
		deadline := time.Now().Add(5 * time.Second)
		for pc.InFlight() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := pc.InFlight(); n != 0 {
			t.Fatalf("%s: %d bytes in flight on an idle wss connection, want 0", id, n)
		}
	}

	// Closing: the server's close frame arrives through TLS.
	a.Close()
	waitConns(t, ts.Server.Server, 1)
}

// TestTLSOldVersionRefused: TLS 1.1 and older are refused.
func TestTLSOldVersionRefused(t *testing.T) {
	ts := startTLSServer(t)
	conf := ts.tlsConf.Clone()
	conf.MinVersion, conf.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.Addr().String(), conf)
	if err == nil {
		c.Close()
		t.Fatal("TLS 1.1 handshake accepted")
	}
}

// TestTLSSlowReaderIsBounded: over TLS as over TCP, without flow control
// (version 1 behaviour), a peer that never reads
// costs the server its queue and a bounded amount of ciphertext, loses
// messages (counted), stays connected, and learns what it lost.
func TestTLSSlowReaderIsBounded(t *testing.T) {
	ts := startTLSServer(t, "WSRELAY_QUEUE_SIZE=64", "WSRELAY_RATE_MSGS=0", "WSRELAY_FLOW_CONTROL=false")
	pub, fast := ts.dialWSS("pub"), ts.dialWSS("fast")
	relaytest.Join(t, pub, "r")
	relaytest.Join(t, fast, "r")
	relaytest.Recv(t, pub, "peer_joined")

	slow := ts.rawTLSDial("/ws?peer=slow")
	if err := slow.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, pub, "peer_joined")
	relaytest.Recv(t, fast, "peer_joined")
	sc := ts.Router.Lookup("slow")
	if sc == nil {
		t.Fatal("slow not registered")
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const n = 2000
	payload := `"` + strings.Repeat("x", 4000) + `"`
	got := make(chan int)
	ctx := relaytest.Ctx(t, 30*time.Second)
	go func() {
		c := 0
		for c < n {
			if _, err := fast.ReceiveType(ctx, "publish"); err != nil {
				break
			}
			c++
		}
		got <- c
	}()
	var maxIn int64
	for i := range n {
		if err := pub.Publish("r", json.RawMessage(payload), nil); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
			maxIn = max(maxIn, sc.InFlight())
		}
	}
	if c := <-got; c != n {
		t.Fatalf("fast member got %d of %d messages", c, n)
	}
	dropped := ts.Stats.DroppedBy(0) // stats.DropQueueFull
	t.Logf("8 MB to a non-reading wss peer: at most %d bytes in flight, %d queued, %d dropped",
		maxIn, sc.Queued(), dropped)
	if dropped == 0 {
		t.Fatal("nothing dropped for a peer that never reads")
	}
	// In-flight bytes are ciphertext held by nbio: never far above the
	// high-water mark.
	if maxIn > ts.HighWater()+2*maxBatchTLS {
		t.Fatalf("%d bytes in flight (high water %d)", maxIn, ts.HighWater())
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// With session resume on, up to QUEUE_SIZE frames written to the
	// socket are also kept for a resume: 64 frames of this size, each in a
	// 16 KiB pooled buffer.
	if growth := int64(after.HeapAlloc) - int64(before.HeapAlloc); growth > 3<<20+64*16<<10 {
		t.Fatalf("heap grew by %d bytes for one non-reading wss peer", growth)
	}

	// slow was not disconnected: reading again, it gets queued frames and
	// then the overflow notice.
	for {
		op, p, err := slow.ReadFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("slow reading back: %v", err)
		}
		if op == frame.OpText && strings.Contains(string(p), `"type":"overflow"`) {
			break
		}
	}
}

// maxBatchTLS is one flush (64 KiB) plus its TLS record overhead.
const maxBatchTLS = 64<<10 + 4*64

// TestTLSMeasure reports the heap per idle wss connection and the full
// handshakes per second on this machine (ECDSA P-256 certificate, X25519).
// It measures rather than asserts: run it with WSRELAY_MEASURE=1.
func TestTLSMeasure(t *testing.T) {
	if os.Getenv("WSRELAY_MEASURE") == "" {
		t.Skip("set WSRELAY_MEASURE=1 to measure")
	}
	ts := startTLSServer(t, "WSRELAY_MAX_CLIENTS=10000")
	addr := ts.Addr().String()

	// Handshakes per second: full TLS 1.3 handshakes, no resumption, from
	// one client goroutine, then from four at once (the client runs on
	// the same cores and costs about as much CPU as the server).
	conf := ts.tlsConf.Clone()
	conf.ClientSessionCache = nil
	for _, par := range []int{1, 4} {
		const each = 200
		start := time.Now()
		var wg sync.WaitGroup
		for range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
					if err != nil {
						t.Error(err)
						return
					}
					c.Close()
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		t.Logf("full TLS handshakes, %d client(s): %d in %v = %.0f/s", par, par*each, el, float64(par*each)/el.Seconds())
	}

	// Heap per idle wss connection (upgraded, welcomed, then silent). The
	// clients run in a child process so that only the server is measured.
	for _, n := range []int{1000, 2000} {
		waitConns(t, ts.Server.Server, 0)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		cmd := exec.Command(os.Args[0], "-test.run=^TestTLSMeasureClients$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("WSRELAY_MEASURE_CLIENTS=%s %d", addr, n))
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready") {
			t.Fatalf("clients: %q %v", line, err)
		}
		waitConns(t, ts.Server.Server, int64(n))
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
		perSys := float64(int64(after.Sys)-int64(before.Sys)) / float64(n)
		stdin.Close()
		_ = cmd.Wait()
		t.Logf("%d idle wss connections: %.0f bytes of live heap each (%.0f bytes of Go runtime memory each)", n, per, perSys)
	}
}

// TestTLSMeasureClients is the client process of TestTLSMeasure.
func TestTLSMeasureClients(t *testing.T) {
	spec := os.Getenv("WSRELAY_MEASURE_CLIENTS")
	if spec == "" {
		t.Skip("child process of TestTLSMeasure")
	}
	var addr string
	var n int
	fmt.Sscan(spec, &addr, &n)
	conf := &tls.Config{InsecureSkipVerify: true}
	conns := make([]*relaytest.RawConn, 0, n)
	for range n {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := relaytest.Upgrade(tc, addr, "/ws")
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if _, _, err := rc.ReadFrame(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, rc)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, rc := range conns {
		rc.Close()
	}
}

// TestTLSHandshakeTimeout: over TLS, a socket that never starts the
// handshake, or stops in the middle of its ClientHello, is closed after the
// handshake timeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	certFile, keyFile, _ := testCert(t)
	ts := relaytest.StartOpts(t, relaytest.Options{HandshakeTimeout: 300 * time.Millisecond},
		"WSRELAY_TLS_CERT_FILE="+certFile, "WSRELAY_TLS_KEY_FILE="+keyFile)
	for _, prefix := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00, 0x01}} {
		nc, err := net.Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, _ = nc.Write(prefix)
		if !closedWithin(nc, 3*time.Second) {
			t.Fatalf("socket that sent %x still open after 3 s", prefix)
		}
	}
}

// TestTLSSessionResumption: a client that reconnects resumes its TLS
// session from the ticket it got, skipping the full handshake.
func TestTLSSessionResumption(t *testing.T) {
	ts := startTLSServer(t)
	conf := ts.tlsConf.Clone()
	conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.Addr().String(), conf)
		if err != nil {
			t.Fatal(err)
		}
		// TLS 1.3 tickets arrive after the handshake, with the first read.
		_, _ = c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /health over TLS: %v %v", resp, err)
		}
		if got := c.ConnectionState().DidResume; got != (i == 1) {
			t.Fatalf("connection %d: resumed %v", i, got)
		}
		c.Close()
	}
}

// TestTLSAdminAddress: with TLS on, the admin address speaks https with the
// same certificate, and nothing in clear text.
func TestTLSAdminAddress(t *testing.T) {
	ts := startTLSServer(t, "WSRELAY_ADMIN_ADDR=127.0.0.1:0")
	if !strings.HasPrefix(ts.Admin, "https://") {
		t.Fatalf("admin address %q", ts.Admin)
	}
	resp, err := ts.https.Get(ts.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https admin /metrics: %d", resp.StatusCode)
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if resp, err := plain.Get("http://" + strings.TrimPrefix(ts.Admin, "https://") + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("admin /metrics answered in clear text")
		}
	}
}
