package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
)

// The examples with an "Output:" comment run a relay of their own on a free
// port, configured with the WSRELAY_* variables of the wsrelay command;
// against a deployed relay its URL is all that changes. The other examples
// need a relay on localhost:8080, so they have no "Output:" comment: they
// are compiled by go test but not run.

// Two peers meet in a room and exchange a message.
func Example() {
	url, stop := startRelay() // a relay with the default settings
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, err := client.Dial(ctx, url, &client.Options{Peer: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := client.Dial(ctx, url, &client.Options{Peer: "bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	for _, c := range []*client.Client{alice, bob} {
		if err := c.Join("lobby", nil); err != nil {
			log.Fatal(err)
		}
		if _, err := c.ReceiveType(ctx, "joined"); err != nil {
			log.Fatal(err)
		}
	}

	// With an id, the relay acks once the message is routed.
	if err := alice.Publish("lobby", map[string]string{"text": "hello"}, 1); err != nil {
		log.Fatal(err)
	}
	if _, err := alice.ReceiveType(ctx, "ack"); err != nil {
		log.Fatal(err)
	}

	m, err := bob.ReceiveType(ctx, "publish")
	if err != nil {
		log.Fatal(err)
	}
	var body struct{ Text string }
	json.Unmarshal(m.Data, &body)
	fmt.Printf("%s in %s: %s\n", m.From, m.Room, body.Text)
	// Output: alice in lobby: hello
}

// A direct message whose data is already encoded JSON, relayed byte for byte.
func ExampleClient_Direct() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080/ws", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	offer := json.RawMessage(`{"sdp":"v=0\r\n...","type":"offer"}`)
	if err := c.Direct("bob", offer, "offer-1"); err != nil {
		log.Fatal(err)
	}
	m, err := c.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	switch m.Type {
	case "ack":
		fmt.Println("routed", string(m.ID))
	case "error":
		fmt.Println("failed:", m.Code, m.Message) // e.g. peer_not_found
	}
}

// Binary frames carry a content type and opaque flags next to the payload.
func ExampleClient_SendBinary() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080/ws", &client.Options{Peer: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	const compressedPosts = 1
	if err := c.SendBinary(frame.BinPublish, compressedPosts, 0, "doc:42", []byte{0x1f, 0x8b}); err != nil {
		log.Fatal(err)
	}
	m, err := c.ReceiveType(ctx, "binary")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes of type %d from %s in %s\n", len(m.Binary.Payload), m.Binary.CType, m.From, m.Room)
}

// Dial reports refused upgrades with their HTTP status.
func ExampleHandshakeError() {
	_, err := client.Dial(context.Background(), "wss://relay.example.com/ws", &client.Options{Token: "eyJ..."})
	var he *client.HandshakeError
	if errors.As(err, &he) {
		switch he.StatusCode {
		case 401:
			fmt.Println("token rejected")
		case 503:
			fmt.Println("relay full, retry after", he.Header.Get("Retry-After"), "seconds")
		}
	}
}

// Receive ends with a *CloseError carrying the relay's close code.
func ExampleCloseError() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080/ws", &client.Options{Peer: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for {
		_, err := c.Receive(ctx)
		var ce *client.CloseError
		if errors.As(err, &ce) {
			if ce.Code == 4001 {
				fmt.Println("replaced by a newer connection as alice")
			}
			return
		}
	}
}

// A key peer (auth mode key) joins a private room with a room token from
// the application's backend: the relay requires room tokens
// (WSRELAY_JWT_REQUIRE_ROOMS) and verifies them with the backend's secret.
func ExampleClient_JoinWithToken() {
	const secret = "the-backend-and-the-relay-share-this-secret"
	url, stop := startRelay("WSRELAY_AUTH=key", "WSRELAY_JWT_SECRET="+secret, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c, err := client.Dial(ctx, url, &client.Options{Key: key})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The backend: a room token for this peer's id and one room.
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": c.PeerID(), "room": "vip", "exp": time.Now().Add(5 * time.Minute).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		log.Fatal(err)
	}

	_ = c.Join("vip", 1) // no token: refused
	m, _ := c.ReceiveType(ctx, "error")
	fmt.Println(m.Code, string(m.ID))
	_ = c.JoinWithToken("vip", token, 2)
	m, _ = c.ReceiveType(ctx, "joined")
	fmt.Println(m.Type, m.Room)
	// Output:
	// forbidden 1
	// joined vip
}

// Compression against a relay started with WSRELAY_COMPRESSION=true: an SDP
// offer of a few kilobytes travels compressed both ways, and reads the same.
func ExampleOptions_compression() {
	url, stop := startRelay("WSRELAY_COMPRESSION=true")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, err := client.Dial(ctx, url, &client.Options{Peer: "alice", Compression: true})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := client.Dial(ctx, url, &client.Options{Peer: "bob", Compression: true})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	sdp := "v=0\r\n" + strings.Repeat("a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host\r\n", 60)
	if err := alice.Direct("bob", map[string]string{"sdp": sdp}, nil); err != nil {
		log.Fatal(err)
	}
	m, err := bob.ReceiveType(ctx, "direct")
	if err != nil {
		log.Fatal(err)
	}
	var offer struct{ SDP string }
	json.Unmarshal(m.Data, &offer)
	fmt.Println(alice.Compressed(), bob.Compressed(), offer.SDP == sdp)
	// Output: true true true
}
