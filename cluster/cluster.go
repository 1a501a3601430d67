package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// Defaults of Config's timing fields.
const (
	DefaultHeartbeat = time.Second
	DefaultDeadAfter = 3 * time.Second
	DefaultPrefix    = "wsrelay"
)

const (
	// inboundQueue is how many NATS messages may wait for the inbound
	// goroutine; beyond it NATS drops them (a slow consumer). A lost
	// presence message shows as a gap in its sender's sequence and is
	// repaired by a snapshot.
	inboundQueue = 1 << 16
	// snapshotChunk is the size at which a snapshot is cut into another
	// NATS message (well under NATS's default 1 MiB max_payload).
	snapshotChunk = 64 << 10
	// maxScratch bounds the publish buffers kept for reuse.
	maxScratch = 256 << 10
	// maxOutbox bounds the presence waiting in the outbox for the control
	// goroutine (NATS stalled): past it, the waiting presence messages are
	// discarded and replaced by a snapshot once NATS takes messages again.
	maxOutbox = 4 << 20
)

// Config configures one node's membership in a cluster.
type Config struct {
	// URL is one NATS server URL or a comma-separated list (WSRELAY_NATS_URL).
	URL string
	// NodeID names this node, unique in the cluster (WSRELAY_NODE_ID); empty
	// picks a random one.
	NodeID string
	// Prefix starts every subject (WSRELAY_NATS_SUBJECT_PREFIX); relays
	// sharing one NATS with different prefixes do not see each other.
	// Empty means DefaultPrefix.
	Prefix string
	// Heartbeat is how often the node announces that it is alive, and
	// DeadAfter how long the others wait without hearing from it before they
	// report its peers as left. Zero means the defaults (1 s and 3 s).
	Heartbeat, DeadAfter time.Duration
}

// Cluster is one node's link to the others through NATS: it implements
// router.Backplane for the local router and delivers what the other nodes
// route to it. Make it with New, connect it with Start before the router
// routes anything, stop it with Close. Safe for concurrent use.
//
// Locks, in the order they are taken: the router's (it calls Joined, Left
// and AppendMembers under a room's lock), the view's (taken only inside the
// view's methods), then localMu. The Cluster calls into the router with none
// of its locks held, and holds none of its locks across a NATS call: the
// presence the router's calls produce is recorded in the outbox under
// localMu and published by the control goroutine with no lock held; frames
// are published by the routing goroutine after the view's lock is released.
type Cluster struct {
	// Set at construction.
	cfg   Config
	log   *slog.Logger
	rt    *router.Router
	st    *stats.Stats
	subj  subjects
	id    string
	inc   uint64
	inbox string
	view  *view // the other nodes' peers and rooms; has its own lock
	warn  rate.Sometimes

	// Set by ServeSessions before Start: the sessions this node hands over
	// to the others (handover.go); nil answers no handover request.
	sessions *session.Handler

	// Set by Start before it starts the goroutines; read-only afterwards.
	nc   *nats.Conn
	subs []*nats.Subscription // presence, broadcast and inbox

	// msgs is filled by nats.go (every subscription delivers here, in
	// arrival order) and drained only by the inbound goroutine. hello and
	// kick wake the control goroutine: capacity 1, senders never block and
	// a pending signal absorbs the next. Close closes done and waits for
	// both goroutines through wg.
	msgs      chan *nats.Msg
	hello     chan struct{}      // (re)connected: send a snapshot asking for theirs
	kick      chan struct{}      // someone asked for a snapshot
	wake      chan struct{}      // the outbox has work
	syncs     chan chan struct{} // handovers waiting for the outbox to be carried out (sync)
	barriers  sync.Map           // *nats.Msg -> chan struct{}: handovers waiting for the inbound goroutine (barrier)
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	connected atomic.Bool  // set by up, cleared on disconnect and by Close
	slow      atomic.Bool  // nats.go reported a slow consumer: count its drops
	movedAny  atomic.Int32 // len(moved), for a lock-free check of inbound directs

	// Guarded by localMu: this node's peers, the numbering of its presence
	// messages and the outbox. Every presence message is numbered and
	// recorded in the outbox under it, together with the room subscriptions
	// to make or cancel, in the order of the changes; the control goroutine
	// carries the outbox out in that order, without the lock. Nothing that
	// takes the view's lock, calls into the router or calls NATS runs under
	// localMu.
	localMu sync.Mutex
	local   map[string]*localPeer
	moving  map[string]bool       // peers whose session is moving (Moving)
	moved   map[string]forwarding // peers whose session moved away (handover.go)
	seq     uint64
	gen     uint64
	out     outbox
	closed  bool // Close ran: nothing more is recorded

	// Owned by the control goroutine (and by Close once it stopped).
	spare   outbox                        // the outbox being carried out
	rooms   map[string]*nats.Subscription // subscribed room subjects
	counted map[*nats.Subscription]int    // slow-consumer drops counted per subscription
}

// localPeer is a peer connected to this node.
type localPeer struct {
	ts    int64 // registration time, unix ns
	rooms []string
}

// New returns a node of the cluster cfg describes, delivering into rt and
// counting the messages it loses in st. It does not connect yet. The caller
// also passes the Cluster to rt.SetBackplane.
func New(cfg Config, rt *router.Router, st *stats.Stats, log *slog.Logger) (*Cluster, error) {
	if st == nil {
		return nil, errors.New("cluster: no stats")
	}
	if cfg.URL == "" {
		return nil, errors.New("cluster: no NATS URL")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	if cfg.NodeID == "" {
		cfg.NodeID = "n" + hex.EncodeToString(rnd[:4])
	}
	subj := newSubjects(cfg.Prefix)
	c := &Cluster{
		cfg:    cfg,
		log:    log.With("node", cfg.NodeID),
		rt:     rt,
		st:     st,
		subj:   subj,
		id:     cfg.NodeID,
		inc:    binary.BigEndian.Uint64(rnd[4:]),
		inbox:  subj.nodeSubject(cfg.NodeID),
		view:   newView(subj, cfg.Heartbeat),
		msgs:   make(chan *nats.Msg, inboundQueue),
		hello:  make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		syncs:  make(chan chan struct{}, 64),
		done:   make(chan struct{}),
		warn:   rate.Sometimes{First: 3, Interval: 10 * time.Second},
		local:  make(map[string]*localPeer),
		moving: make(map[string]bool),
		moved:  make(map[string]forwarding),
		rooms:  make(map[string]*nats.Subscription),

		counted: make(map[*nats.Subscription]int),
	}
	return c, nil
}

// NodeID returns this node's id. Safe for concurrent use.
func (c *Cluster) NodeID() string { return c.id }

// Connected reports whether the node currently has a NATS connection.
func (c *Cluster) Connected() bool { return c.connected.Load() }

// Nodes returns the number of other nodes this node currently hears from.
// It reads the view and never waits for the network.
func (c *Cluster) Nodes() int {
	return c.view.nodeCount()
}

// PeerNode returns the id of the other node peer id is connected to, or ""
// when no other node announced it (for tests and diagnostics).
func (c *Cluster) PeerNode(id string) string {
	return c.view.peerNode(id)
}

// Start connects to NATS and starts the node's two goroutines (inbound
// delivery, and heartbeats with liveness checks). A NATS server that cannot
// be reached is not an error: the node serves its local peers and keeps
// trying, forever, in the background. Start fails only on an unusable URL.
// When NATS is reachable, Start returns once the server has registered the
// node's subscriptions (one round trip, at most 2 s): what the other nodes
// publish after that reaches the node.
func (c *Cluster) Start() error {
	nc, err := nats.Connect(c.cfg.URL,
		nats.Name("wsrelay "+c.id),
		nats.NoEcho(), // a node never receives what it published itself
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// No buffering while disconnected: frames then are dropped, not
		// delivered late, and presence is resent as a snapshot on reconnect.
		nats.ReconnectBufSize(-1),
		nats.Timeout(2*time.Second),
		// A write that NATS does not take within this fails and counts as
		// a lost connection (nats.go's default is a minute): it bounds how
		// long a stalled NATS holds the goroutine that routes a frame (a
		// poller) or Close.
		nats.FlusherTimeout(2*time.Second),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(nc *nats.Conn) { c.up(nc, "connected") }),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.up(nc, "reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if c.connected.Swap(false) {
				c.log.Warn("cluster disconnected", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				// Counted by the control goroutine (countDropped).
				c.slow.Store(true)
			}
			c.warn.Do(func() { c.log.Warn("cluster error", "err", err) })
		}),
	)
	if err != nil {
		return fmt.Errorf("cluster: connect: %w", err)
	}
	c.nc = nc
	for _, subject := range []string{c.subj.presence, c.subj.all, c.inbox} {
		sub, err := nc.ChanSubscribe(subject, c.msgs)
		if err != nil {
			nc.Close()
			return fmt.Errorf("cluster: subscribe %s: %w", subject, err)
		}
		c.subs = append(c.subs, sub)
	}
	if c.sessions != nil {
		// Handover requests arrive among the frames, in order: a session is
		// handed over after every frame for it that arrived before the
		// request was delivered (handover.go).
		sub, err := nc.ChanSubscribe(c.subj.handoverSubject(c.id), c.msgs)
		if err != nil {
			nc.Close()
			return fmt.Errorf("cluster: subscribe handover: %w", err)
		}
		c.subs = append(c.subs, sub)
	}
	if nc.IsConnected() {
		// A failure here is a lost connection: the subscriptions are
		// sent again on reconnect.
		_ = nc.FlushTimeout(2 * time.Second)
	}
	c.wg.Add(2)
	go c.inbound()
	go c.control()
	if nc.IsConnected() {
		c.up(nc, "connected")
	} else {
		c.log.Warn("cluster unreachable, retrying in the background")
	}
	return nil
}

// up records a (re)connection and schedules the hello snapshot. nats.go
// calls it from its callback goroutine (and Start once); it does not block.
func (c *Cluster) up(nc *nats.Conn, how string) {
	if !c.connected.Swap(true) {
		c.log.Info("cluster "+how, "url", nc.ConnectedUrlRedacted())
	}
	select {
	case c.hello <- struct{}{}:
	default:
	}
}

// Close leaves the cluster: it stops the node's goroutines, tells the other
// nodes (so they drop this node's peers at once) and closes the NATS
// connection. It blocks for up to a second while the goroutines stop and
// the goodbye is flushed; a goroutine stuck in a NATS write (NATS stalled)
// is released by closing the connection, and then no goodbye is sent. Later
// calls do nothing.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.localMu.Lock()
		if c.nc != nil {
			c.publishPresence(recBye) // the last message of the outbox
		}
		c.closed = true
		c.localMu.Unlock()
		if c.nc == nil {
			return
		}
		close(c.done)
		stopped := make(chan struct{})
		go func() { c.wg.Wait(); close(stopped) }()
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-stopped:
			// Only this goroutine publishes now: what is left of the
			// outbox, the goodbye last.
			c.drain()
			c.countDropped(true)
			_ = c.nc.FlushTimeout(time.Second)
		case <-t.C:
		}
		c.nc.Close()
		<-stopped
		c.connected.Store(false)
	})
}
