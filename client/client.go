package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultReadLimit        = 16 << 20
	defaultReceiveBuffer    = 1024

	// controlTimeout bounds the write of one control frame (pong, ping, close).
	controlTimeout = time.Second
	// closeTimeout is how long Close waits for the relay's close frame before
	// dropping the connection.
	closeTimeout = time.Second
)

// Options for Dial. The zero value (or nil) is valid.
type Options struct {
	// Peer is the requested peer id, sent as ?peer= (auth "none" only).
	Peer string
	// Token is a JWT sent as "Authorization: Bearer <Token>".
	Token string
	// Key is the peer's Ed25519 key pair for auth mode key (docs/protocol.md
	// section 11): its public key goes as ?key=, and Dial answers the
	// relay's challenge with a signature. The peer id is then KeyID of the
	// public key (with ?device=D in Query: KeyID + ":" + D).
	Key ed25519.PrivateKey
	// Query holds extra query parameters, e.g. device, tma, token.
	Query url.Values
	// Header holds extra handshake headers, e.g. Origin or
	// "Authorization: tma <initData>" (Token, when set, takes precedence).
	Header http.Header
	// HandshakeTimeout bounds the upgrade and the wait for the welcome.
	// Default: the Dialer's HandshakeTimeout, else 10s.
	HandshakeTimeout time.Duration
	// ReadLimit is the largest message accepted from the relay; a larger one
	// ends the connection with a *CloseError of code 1009. Default 16 MiB.
	ReadLimit int64
	// ReceiveBuffer is the capacity of the channel between the reader
	// goroutine and Receive. Default 1024; negative means unbuffered (the
	// reader then holds at most one undelivered message, useful for
	// slow-reader tests).
	ReceiveBuffer int
	// Dialer is used for the upgrade (TLS config, proxy, buffer sizes).
	// Default: a copy of websocket.DefaultDialer. It is copied, not modified.
	Dialer *websocket.Dialer
	// Resume makes the Client come back by itself when its connection is
	// lost (no close frame, a network error, the relay's liveness timeout
	// or shutdown): it reconnects with the session's resume token and the
	// count of messages it received (docs/protocol.md section 10), and Receive
	// goes on where it stopped. Each reconnect is reported by a Message of
	// Type "resumed": Resumed true when the relay resumed the session (its
	// Missed messages could not be replayed), false when it started a new
	// one, for which the Client has re-joined the rooms it was in. Sends
	// during a reconnect fail with ErrClosed. Without it the Client ends
	// with its connection.
	Resume bool
	// ResumeTimeout bounds how long the Client tries to reconnect. Default
	// 30s, the relay's default resume window.
	ResumeTimeout time.Duration
	// Compression offers permessage-deflate (RFC 7692) without context
	// takeover, as the Dialer's EnableCompression does. A relay with
	// WSRELAY_COMPRESSION=true accepts it (Compressed then reports true):
	// it sends its larger messages compressed, and the Client compresses
	// the messages it sends of at least CompressMinBytes. Compressed
	// messages are inflated transparently; ReadLimit applies to the
	// inflated size.
	Compression bool
	// CompressMinBytes is the smallest message the Client sends compressed
	// once compression is negotiated. Default 512, the relay's own default;
	// smaller messages gain little and cost both sides CPU.
	CompressMinBytes int
}

// Client is one connection to a relay, as one peer. It is safe for
// concurrent use: the Send methods may be called from many goroutines;
// Receive and ReceiveType from one at a time.
type Client struct {
	// conn is the current connection; a reconnect (Options.Resume) replaces
	// it, on the reader goroutine.
	conn atomic.Pointer[websocket.Conn]

	// set at construction, for reconnects
	url    *url.URL
	header http.Header
	dialer websocket.Dialer
	opts   Options

	welcomeMu sync.Mutex // guards welcome
	welcome   Message

	// received counts the data messages of the session: every message the
	// relay sent after the welcome, as the relay numbers them.
	received atomic.Uint64
	// resumable: the relay handed out a resume token.
	resumable atomic.Bool

	// Owned by the reader goroutine.
	welcomed bool                // the session's welcome was read
	token    string              // the session's resume token
	rooms    map[string]struct{} // rooms joined, re-joined for a new session
	// compressMin is the smallest message written compressed; 0 when
	// compression was not negotiated. Set by Dial; a reconnect offers the
	// same extension to the same relay.
	compressMin int

	// msgs carries decoded frames from the reader goroutine, which is its
	// only sender and closes it when the connection ends. Elements are
	// pointers so an idle buffer costs 8 bytes a slot, not a Message.
	msgs chan *item
	// stop is closed by Close and CloseNow; the reader then discards
	// messages instead of blocking on a full msgs.
	stop     chan struct{}
	stopOnce sync.Once
	// readerDone is closed when the reader goroutine has exited.
	readerDone chan struct{}
	// closeErr is written by the reader before it closes msgs, and read
	// only after msgs is closed.
	closeErr *CloseError

	autoPong atomic.Bool
	pings    atomic.Uint64

	wmu sync.Mutex // serializes data-frame writes; control frames need no lock
}

// item is one decoded frame on its way to Receive.
type item struct {
	msg Message
	err error
}

// Dial connects to a relay's /ws URL (ws:// or wss://; http:// and https://
// are accepted as aliases), waits for the welcome message and returns. It
// blocks until then, ctx is done, or the handshake timeout passes.
//
// When the relay refuses the upgrade, Dial returns a *HandshakeError with the
// HTTP status. When the connection closes before the welcome, the returned
// error wraps the *CloseError. If the first message is not a welcome, it
// wraps ErrNoWelcome.
func Dial(ctx context.Context, rawURL string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	if opts.Peer != "" || len(opts.Query) > 0 || opts.Key != nil {
		q := u.Query()
		if opts.Peer != "" {
			q.Set("peer", opts.Peer)
		}
		if opts.Key != nil {
			q.Set("key", encodeKey(opts.Key.Public().(ed25519.PublicKey)))
		}
		for k, vs := range opts.Query {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	header := opts.Header.Clone()
	if header == nil {
		header = make(http.Header)
	}
	if opts.Token != "" {
		header.Set("Authorization", "Bearer "+opts.Token)
	}

	d := *websocket.DefaultDialer
	if opts.Dialer != nil {
		d = *opts.Dialer
	}
	d.EnableCompression = d.EnableCompression || opts.Compression
	if opts.HandshakeTimeout > 0 {
		d.HandshakeTimeout = opts.HandshakeTimeout
	} else if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = defaultHandshakeTimeout
	}

	// The query may hold credentials (token, tma): errors name the endpoint only.
	endpoint := u.Scheme + "://" + u.Host + u.Path
	conn, resp, err := d.DialContext(ctx, u.String(), header)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(resp.Body)
			return nil, &HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header, Body: string(body)}
		}
		return nil, fmt.Errorf("client: dial %s: %w", endpoint, err)
	}

	c := newClient(conn, opts)
	c.url, c.header, c.dialer = u, header, d
	if negotiatedDeflate(resp.Header) {
		c.compressMin = opts.CompressMinBytes
		if c.compressMin <= 0 {
			c.compressMin = defaultCompressMin
		}
	}
	wctx, cancel := context.WithTimeout(ctx, d.HandshakeTimeout)
	defer cancel()
	m, err := c.Receive(wctx)
	if err == nil && m.Type == "challenge" {
		m, err = c.answerChallenge(wctx, opts.Key, m.Nonce)
	}
	if err == nil && m.Type != "welcome" {
		err = fmt.Errorf("%w: got %q", ErrNoWelcome, m.Type)
	}
	if err != nil {
		c.CloseNow()
		return nil, fmt.Errorf("client: dial %s: waiting for welcome: %w", endpoint, err)
	}
	c.setWelcome(m)
	return c, nil
}

// defaultCompressMin is the default Options.CompressMinBytes.
const defaultCompressMin = 512

// negotiatedDeflate reports whether the relay's upgrade response accepted
// permessage-deflate.
func negotiatedDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for ext := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
				return true
			}
		}
	}
	return false
}

// Compressed reports whether the relay accepted permessage-deflate
// (Options.Compression).
func (c *Client) Compressed() bool { return c.compressMin > 0 }

// authContext is signed in front of the nonce of a key-auth challenge.
const authContext = "wsrelay-auth-v1:"

// KeyID returns the peer id of pub in auth mode key: "k:" followed by the
// unpadded base64url encoding of the 32-byte public key.
func KeyID(pub ed25519.PublicKey) string { return "k:" + encodeKey(pub) }

func encodeKey(pub ed25519.PublicKey) string { return base64.RawURLEncoding.EncodeToString(pub) }

// answerChallenge signs "wsrelay-auth-v1:" followed by nonce with key, sends
// the auth message and returns the message that follows, the welcome when
// the relay accepts the signature. A refusal closes the connection with
// 4003, which the returned error wraps as a *CloseError.
func (c *Client) answerChallenge(ctx context.Context, key ed25519.PrivateKey, nonce string) (Message, error) {
	if key == nil {
		return Message{}, fmt.Errorf("%w: got a key-auth challenge, and Options.Key is not set", ErrNoWelcome)
	}
	sig := ed25519.Sign(key, []byte(authContext+nonce))
	msg := `{"type":"auth","sig":"` + base64.RawURLEncoding.EncodeToString(sig) + `"}`
	if err := c.SendText([]byte(msg)); err != nil {
		// The relay may have closed already: its close code says more.
		if m, rerr := c.Receive(ctx); rerr != nil {
			return m, rerr
		}
		return Message{}, err
	}
	return c.Receive(ctx)
}

// newClient wraps an upgraded connection and starts its reader goroutine.
func newClient(conn *websocket.Conn, opts *Options) *Client {
	size := opts.ReceiveBuffer
	switch {
	case size == 0:
		size = defaultReceiveBuffer
	case size < 0:
		size = 0
	}
	c := &Client{
		opts:       *opts,
		msgs:       make(chan *item, size),
		stop:       make(chan struct{}),
		readerDone: make(chan struct{}),
		rooms:      make(map[string]struct{}),
	}
	c.autoPong.Store(true)
	c.install(conn)
	go c.readLoop()
	return c
}

// install makes conn the Client's connection.
func (c *Client) install(conn *websocket.Conn) {
	limit := c.opts.ReadLimit
	if limit <= 0 {
		limit = defaultReadLimit
	}
	conn.SetReadLimit(limit)
	conn.SetPingHandler(func(data string) error { return c.handlePing(conn, data) })
	c.conn.Store(conn)
}

// readLoop is the reader goroutine: it reads and decodes frames until the
// connection ends, then records the close error and closes the connection
// and msgs.
func (c *Client) readLoop() {
	defer close(c.readerDone)
	for {
		conn := c.conn.Load()
		typ, raw, err := conn.ReadMessage()
		if err != nil {
			ce := closeErrorFrom(err)
			if c.opts.Resume && resumableClose(ce.Code) {
				if ev, ok := c.reconnect(); ok {
					c.deliver(&item{msg: ev})
					continue
				}
			}
			c.closeErr = ce
			// Close the socket before msgs, so a Send after Receive has
			// returned the *CloseError fails with ErrClosed.
			c.conn.Load().Close()
			close(c.msgs)
			return
		}
		it := new(item)
		switch typ {
		case websocket.TextMessage:
			it.msg, it.err = decodeText(raw)
		case websocket.BinaryMessage:
			it.msg, it.err = decodeBinary(raw)
		default:
			continue
		}
		c.track(&it.msg)
		c.deliver(it)
	}
}

// deliver hands it to Receive, or drops it once the Client is closing.
func (c *Client) deliver(it *item) {
	select {
	case c.msgs <- it:
	case <-c.stop:
	}
}

// closeErrorFrom turns the error that ended ReadMessage into a *CloseError.
func closeErrorFrom(err error) *CloseError {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	case errors.Is(err, websocket.ErrReadLimit):
		return &CloseError{Code: websocket.CloseMessageTooBig, err: err}
	default:
		return &CloseError{Code: websocket.CloseAbnormalClosure, err: err}
	}
}

// handlePing answers a WebSocket ping from the relay unless auto-pong is
// off. It runs on the reader goroutine.
func (c *Client) handlePing(conn *websocket.Conn, data string) error {
	c.pings.Add(1)
	if !c.autoPong.Load() {
		return nil
	}
	err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(controlTimeout))
	var ne net.Error
	if errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

// PeerID returns the peer id the relay assigned, from the welcome.
func (c *Client) PeerID() string { return c.Welcome().Peer }

// Welcome returns the welcome message of the current connection.
func (c *Client) Welcome() Message {
	c.welcomeMu.Lock()
	defer c.welcomeMu.Unlock()
	return c.welcome
}

func (c *Client) setWelcome(m Message) {
	c.welcomeMu.Lock()
	c.welcome = m
	c.welcomeMu.Unlock()
	c.resumable.Store(m.Resume != "")
}

// Received returns how many data messages the Client received in its
// session: every message after the welcome (docs/protocol.md section 10). A
// resume sends it to the relay.
func (c *Client) Received() uint64 { return c.received.Load() }

// Receive blocks until the next message, ctx is done, or the connection
// closes. Messages are returned in the order the relay sent them. A
// malformed frame is returned with an error wrapping ErrBadMessage, and the
// connection stays usable. Once the connection has ended and every buffered
// message has been returned, Receive returns the *CloseError, every time.
func (c *Client) Receive(ctx context.Context) (Message, error) {
	select {
	case it, ok := <-c.msgs:
		if !ok {
			return Message{}, c.closeErr
		}
		return it.msg, it.err
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// ReceiveType receives until a message of type typ arrives and returns it,
// discarding other messages (peer_joined noise, say). It returns early on
// any error Receive returns. Note that an "error" message is discarded too
// unless typ is "error".
func (c *Client) ReceiveType(ctx context.Context, typ string) (Message, error) {
	for {
		m, err := c.Receive(ctx)
		if err != nil || m.Type == typ {
			return m, err
		}
	}
}

// PingsReceived returns how many WebSocket pings the relay has sent that the
// reader has processed, answered or not.
func (c *Client) PingsReceived() uint64 { return c.pings.Load() }

// SetAutoPong turns answering the relay's WebSocket pings on or off. It is
// on by default; off makes the client look dead to the relay's liveness
// check unless it sends something else.
func (c *Client) SetAutoPong(on bool) { c.autoPong.Store(on) }

// NetConn returns the underlying network connection, for tests that need to
// act below WebSocket (socket buffers, deadlines). Reading from it races with
// the reader goroutine.
func (c *Client) NetConn() net.Conn { return c.conn.Load().NetConn() }

// Close starts the close handshake with code 1000, waits up to one second
// for the relay's close frame, then closes the connection and waits for the
// reader goroutine to exit. Messages still buffered can be received after
// Close, followed by the *CloseError. Close reports an error only when the
// close frame could not be written and the relay had not closed the
// connection itself. It is safe to call more than once.
func (c *Client) Close() error {
	select {
	case <-c.readerDone:
		c.stopDelivery()
		return nil
	default:
	}
	c.stopDelivery() // no reconnect from now on
	err := c.conn.Load().WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(controlTimeout))
	if errors.Is(err, websocket.ErrCloseSent) {
		err = nil
	}
	c.stopDelivery()
	if err == nil {
		t := time.NewTimer(closeTimeout)
		select {
		case <-c.readerDone:
		case <-t.C:
		}
		t.Stop()
	}
	c.conn.Load().Close()
	<-c.readerDone
	if err != nil && c.closeErr.Code == websocket.CloseAbnormalClosure {
		return fmt.Errorf("client: close: %w", err)
	}
	return nil
}

// CloseNow drops the connection without a close frame, as a crashed client
// or a lost network would, and waits for the reader goroutine to exit. The
// relay sees an abnormal closure. It is safe to call more than once, and
// after Close.
func (c *Client) CloseNow() error {
	c.stopDelivery()
	err := c.conn.Load().Close()
	<-c.readerDone
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("client: close: %w", err)
	}
	return nil
}

func (c *Client) stopDelivery() {
	c.stopOnce.Do(func() { close(c.stop) })
}
