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

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
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
// route to it. Make it with New, connect it with Start, stop it with Close.
// Safe for concurrent use.
type Cluster struct {
	// Set at construction.
	cfg   Config
	log   *slog.Logger
	rt    *router.Router
	subj  subjects
	id    string
	inc   uint64
	inbox string
	view  *view

	nc        *nats.Conn
	msgs      chan *nats.Msg // every subscription delivers here, in arrival order
	connected atomic.Bool
	hello     chan struct{} // (re)connected: send a snapshot asking for theirs
	kick      chan struct{} // someone asked for a snapshot
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	warn      rate.Sometimes

	// Guarded by localMu: this node's peers and subscribed rooms, and the
	// numbering of its presence messages. Every presence message is built
	// and published under it, so others see them in the order of the
	// changes.
	localMu sync.Mutex
	local   map[string]*localPeer
	rooms   map[string]*nats.Subscription
	seq     uint64
	gen     uint64
	pbuf    []byte
}

// localPeer is a peer connected to this node.
type localPeer struct {
	ts    int64 // registration time, unix ns
	rooms []string
}

var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// New returns a node of the cluster cfg describes, delivering into rt. It
// does not connect yet. The caller also passes the Cluster to
// rt.SetBackplane.
func New(cfg Config, rt *router.Router, log *slog.Logger) (*Cluster, error) {
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
		cfg:   cfg,
		log:   log.With("node", cfg.NodeID),
		rt:    rt,
		subj:  subj,
		id:    cfg.NodeID,
		inc:   binary.BigEndian.Uint64(rnd[4:]),
		inbox: subj.nodeSubject(cfg.NodeID),
		view:  newView(subj, cfg.Heartbeat),
		msgs:  make(chan *nats.Msg, inboundQueue),
		hello: make(chan struct{}, 1),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		warn:  rate.Sometimes{First: 3, Interval: 10 * time.Second},
		local: make(map[string]*localPeer),
		rooms: make(map[string]*nats.Subscription),
	}
	return c, nil
}

// NodeID returns this node's id.
func (c *Cluster) NodeID() string { return c.id }

// Connected reports whether the node currently has a NATS connection.
func (c *Cluster) Connected() bool { return c.connected.Load() }

// Nodes returns the number of other nodes this node currently hears from.
func (c *Cluster) Nodes() int {
	return c.view.nodeCount()
}

// Start connects to NATS and starts the node's two goroutines (inbound
// delivery, and heartbeats with liveness checks). A NATS server that cannot
// be reached is not an error: the node serves its local peers and keeps
// trying, forever, in the background. Start fails only on an unusable URL.
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
			c.warn.Do(func() { c.log.Warn("cluster error", "err", err) })
		}),
	)
	if err != nil {
		return fmt.Errorf("cluster: connect: %w", err)
	}
	c.nc = nc
	for _, subject := range []string{c.subj.presence, c.subj.all, c.inbox} {
		if _, err := nc.ChanSubscribe(subject, c.msgs); err != nil {
			nc.Close()
			return fmt.Errorf("cluster: subscribe %s: %w", subject, err)
		}
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

// up records a (re)connection and schedules the hello snapshot.
func (c *Cluster) up(nc *nats.Conn, how string) {
	if !c.connected.Swap(true) {
		c.log.Info("cluster "+how, "url", nc.ConnectedUrlRedacted())
	}
	select {
	case c.hello <- struct{}{}:
	default:
	}
}

// Close leaves the cluster: it tells the other nodes (so they drop this
// node's peers at once), closes the NATS connection and waits for the
// node's goroutines. Later calls do nothing.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		if c.nc == nil {
			return
		}
		c.localMu.Lock()
		c.publishPresence(recBye)
		c.localMu.Unlock()
		_ = c.nc.FlushTimeout(time.Second)
		close(c.done)
		c.nc.Close()
		c.wg.Wait()
		c.connected.Store(false)
	})
}

// --- router.Backplane: what the local router tells the others ---

// PeerUp implements router.Backplane. The router calls it without holding
// any of its locks.
func (c *Cluster) PeerUp(id string) {
	c.localMu.Lock()
	lp := c.local[id]
	if lp == nil {
		lp = &localPeer{}
		c.local[id] = lp
	}
	lp.ts = time.Now().UnixNano()
	c.pbuf = appendRecUp(c.startPresence(), id, lp.ts)
	c.flushPresence()
	c.localMu.Unlock()

	// An older connection of id on another node is replaced: forget it now
	// (peer_left to the local members of its rooms, as on a single node),
	// so that its node's late leave and down records find nothing.
	var ch changes
	c.view.forgetPeer(id, &ch)
	c.apply(&ch)
}

// PeerDown implements router.Backplane.
func (c *Cluster) PeerDown(id string) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	delete(c.local, id)
	c.pbuf = appendField(append(c.startPresence(), recDown), id)
	c.flushPresence()
}

// Joined implements router.Backplane: the first local member subscribes
// the node to the room's subject.
func (c *Cluster) Joined(room, peer string, first bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	b := c.startPresence()
	lp := c.local[peer]
	if lp == nil {
		// Joined before PeerUp (the router registers a connection after its
		// welcome): announce it first, so that the others do not take the
		// join for one of an older connection of the same id.
		lp = &localPeer{ts: time.Now().UnixNano()}
		c.local[peer] = lp
		b = appendRecUp(b, peer, lp.ts)
	}
	lp.rooms = append(lp.rooms, room)
	if first && c.rooms[room] == nil {
		sub, err := c.nc.ChanSubscribe(c.subj.roomSubject(room), c.msgs)
		if err != nil {
			c.warn.Do(func() { c.log.Warn("cluster subscribe failed", "err", err) })
		} else {
			c.rooms[room] = sub
		}
	}
	c.pbuf = appendRecRoom(b, recJoin, peer, room)
	c.flushPresence()
}

// Left implements router.Backplane: the last local member unsubscribes the
// node from the room's subject.
func (c *Cluster) Left(room, peer string, last bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	if lp := c.local[peer]; lp != nil {
		for i, r := range lp.rooms {
			if r == room {
				n := len(lp.rooms) - 1
				lp.rooms[i] = lp.rooms[n]
				lp.rooms[n] = ""
				lp.rooms = lp.rooms[:n]
				break
			}
		}
	}
	if last {
		if sub := c.rooms[room]; sub != nil {
			_ = sub.Unsubscribe()
			delete(c.rooms, room)
		}
	}
	c.pbuf = appendRecRoom(c.startPresence(), recLeave, peer, room)
	c.flushPresence()
}

// AppendMembers implements router.Backplane from the replicated view.
func (c *Cluster) AppendMembers(dst []string, room string, max int) []string {
	return c.view.appendMembers(dst, room, max)
}

// Direct implements router.Backplane: the peer directory names the node,
// whose inbox gets the frame.
func (c *Cluster) Direct(to string, buf *frame.Buf) bool {
	inbox, ok := c.view.peerInbox(to)
	if !ok {
		return false
	}
	c.send(inbox, kindDirect, to, buf)
	return true
}

// Publish implements router.Backplane: one message on the room's subject,
// which only nodes with members of the room subscribe to.
func (c *Cluster) Publish(room string, buf *frame.Buf) bool {
	subject, ok := c.view.roomSubject(room)
	if !ok {
		return false
	}
	return c.send(subject, kindRoom, room, buf)
}

// Broadcast implements router.Backplane.
func (c *Cluster) Broadcast(buf *frame.Buf) bool {
	if c.view.nodeCount() == 0 {
		return false
	}
	return c.send(c.subj.all, kindBroadcast, "", buf)
}

// send publishes buf's body behind a routing header. nats.go copies it into
// its write buffer, flushed by its own goroutine, so back-to-back messages
// leave in one write; nothing here waits for the network.
func (c *Cluster) send(subject string, kind byte, key string, buf *frame.Buf) bool {
	bp := scratch.Get().(*[]byte)
	b := append((*bp)[:0], kind, buf.Bytes()[0]&0x0F)
	if kind != kindBroadcast {
		b = appendField(b, key)
	}
	b = append(b, buf.Body()...)
	err := c.nc.Publish(subject, b)
	if cap(b) <= maxScratch {
		*bp = b
		scratch.Put(bp)
	}
	return err == nil
}

// --- presence messages, built and published under localMu ---

// startPresence starts the next presence message in c.pbuf.
func (c *Cluster) startPresence() []byte {
	c.seq++
	return appendPresenceHeader(c.pbuf[:0], c.id, c.inc, c.seq)
}

// flushPresence publishes c.pbuf. A failure (NATS unreachable) leaves a gap
// in the sequence; the others then ask for a snapshot.
func (c *Cluster) flushPresence() {
	_ = c.nc.Publish(c.subj.presence, c.pbuf)
	if cap(c.pbuf) > maxScratch {
		c.pbuf = nil
	}
}

// publishPresence publishes a message holding one record without fields.
func (c *Cluster) publishPresence(rec byte) {
	if rec == recHeartbeat {
		c.pbuf = appendPresenceHeader(c.pbuf[:0], c.id, c.inc, c.seq)
	} else {
		c.pbuf = c.startPresence()
	}
	c.pbuf = append(c.pbuf, rec)
	c.flushPresence()
}

func appendRecUp(dst []byte, peer string, ts int64) []byte {
	dst = appendField(append(dst, recUp), peer)
	return binary.BigEndian.AppendUint64(dst, uint64(ts))
}

func appendRecRoom(dst []byte, rec byte, peer, room string) []byte {
	return appendField(appendField(append(dst, rec), peer), room)
}

// publishSnapshot publishes this node's whole presence: every local peer and
// its rooms, between a start and an end record, cut into messages of about
// snapshotChunk bytes. hello asks every other node to answer with its own.
func (c *Cluster) publishSnapshot(hello bool) {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.gen++
	b := binary.BigEndian.AppendUint64(append(c.startPresence(), recSnapStart), c.gen)
	h := byte(0)
	if hello {
		h = 1
	}
	b = append(b, h)
	for id, lp := range c.local {
		if len(b) > snapshotChunk {
			c.pbuf = b
			c.flushPresence()
			b = c.startPresence()
		}
		b = appendRecUp(b, id, lp.ts)
		for _, room := range lp.rooms {
			b = appendRecRoom(b, recJoin, id, room)
		}
	}
	c.pbuf = binary.BigEndian.AppendUint64(append(b, recSnapEnd), c.gen)
	c.flushPresence()
}

// requestSnapshot asks the node whose inbox is inbox for a snapshot. It
// publishes, so the caller holds no lock.
func (c *Cluster) requestSnapshot(inbox string) {
	var b [2 + 128]byte
	_ = c.nc.Publish(inbox, appendField(append(b[:0], kindSyncReq), c.id))
}

// --- goroutines ---

// control sends heartbeats, expires silent nodes and publishes the
// snapshots that were asked for.
func (c *Cluster) control() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.Heartbeat / 4)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-c.done:
			return
		case <-c.hello:
			c.publishSnapshot(true)
		case <-c.kick:
			c.publishSnapshot(false)
		case now := <-tick.C:
			if now.Sub(last) >= c.cfg.Heartbeat-c.cfg.Heartbeat/8 {
				last = now
				c.localMu.Lock()
				c.publishPresence(recHeartbeat)
				c.localMu.Unlock()
			}
			var ch changes
			for _, id := range c.view.expire(now.Add(-c.cfg.DeadAfter), &ch) {
				c.log.Warn("cluster node lost", "peer_node", id)
			}
			c.apply(&ch)
		}
	}
}

// inbound handles every message from NATS in arrival order: frames for
// local peers and the other nodes' presence. It routes everything that is
// already waiting before flushing the touched connections once.
func (c *Cluster) inbound() {
	defer c.wg.Done()
	var bt router.Batch
	for {
		select {
		case <-c.done:
			return
		case m := <-c.msgs:
			c.handle(m.Data, &bt)
			for i := 0; i < 256; i++ {
				select {
				case m = <-c.msgs:
					c.handle(m.Data, &bt)
					continue
				default:
				}
				break
			}
			bt.Flush()
		}
	}
}

func (c *Cluster) handle(data []byte, bt *router.Batch) {
	if len(data) < 2 {
		return
	}
	r := reader{b: data[1:]}
	switch data[0] {
	case kindDirect, kindRoom, kindBroadcast:
		op := r.byte()
		var key []byte
		if data[0] != kindBroadcast {
			key = r.field()
		}
		if r.bad || op != frame.OpText && op != frame.OpBinary {
			return
		}
		buf := frame.NewBuf(len(r.b))
		buf.B = append(buf.B, r.b...)
		buf.Finish(op)
		switch data[0] {
		case kindDirect:
			c.rt.DeliverDirect(string(key), buf, bt)
		case kindRoom:
			c.rt.DeliverRoom(string(key), buf, bt)
		default:
			c.rt.DeliverAll(buf, bt)
		}
		buf.Release()
	case kindSyncReq:
		c.wantSnapshot()
	case kindPresence:
		c.presence(&r)
	}
}

// wantSnapshot schedules a snapshot on the control goroutine.
func (c *Cluster) wantSnapshot() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// presence applies one presence message of another node to the view, then
// tells the local members what changed.
func (c *Cluster) presence(r *reader) {
	nodeID := r.field()
	inc := r.uint64()
	seq := r.uint64()
	if r.bad || len(r.b) == 0 {
		return
	}
	if string(nodeID) == c.id {
		c.warn.Do(func() { c.log.Error("another node uses this node's WSRELAY_NODE_ID") })
		return
	}
	var ch changes
	ask, hello := c.view.applyPresence(nodeID, inc, seq, r, time.Now(), c.localNewer, &ch)
	if ask != "" {
		c.requestSnapshot(ask)
	}
	c.apply(&ch)
	if hello {
		c.wantSnapshot()
	}
}

// localNewer reports whether a local connection of peer is newer than its
// registration at ts on node, which is then stale. Called under the view's
// lock (lock order: view, then localMu).
func (c *Cluster) localNewer(peer string, ts int64, node string) bool {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	lp := c.local[peer]
	return lp != nil && !newer(ts, node, lp.ts, c.id)
}

// apply closes the local connections that a newer one of the same id on
// another node replaced, then tells the local members about remote joins and
// leaves (in that order: the replaced connection leaves before its
// successor joins). It runs without the view's lock.
func (c *Cluster) apply(ch *changes) {
	for _, u := range ch.ups {
		c.localMu.Lock()
		lp := c.local[u.peer]
		evict := lp != nil && newer(u.ts, u.node, lp.ts, c.id)
		c.localMu.Unlock()
		if evict {
			c.rt.Evict(u.peer)
		}
	}
	if len(ch.notes) > 0 {
		var bt router.Batch
		for _, nt := range ch.notes {
			if nt.joined {
				c.rt.RemoteJoined(nt.room, nt.peer, &bt)
			} else {
				c.rt.RemoteLeft(nt.room, nt.peer, &bt)
			}
		}
		bt.Flush()
	}
}

// PeerNode returns the id of the other node peer id is connected to, or ""
// when no other node announced it (for tests and diagnostics).
func (c *Cluster) PeerNode(id string) string {
	return c.view.peerNode(id)
}
