package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsrelay/wsrelay/auth"
)

// keyAuthServer is the relay's side of key auth (docs/protocol.md section 11)
// built from package auth: it reads ?key=, sends the challenge, checks the
// first message and answers welcome as k:<key>[:device], or closes with
// 4003. tamper, when set, changes the nonce the client is sent, so its
// signature cannot match. got receives the server's verdict.
func keyAuthServer(t *testing.T, tamper bool, got chan<- error) *fakeServer {
	return newFakeServer(t, false, func(ws *websocket.Conn, r *http.Request) {
		id, err := auth.Key{}.Identify(r)
		if err != nil {
			got <- err
			return
		}
		ch := auth.NewChallenge(id.Key)
		msg := ch.AppendMessage(nil)
		if tamper {
			msg = auth.NewChallenge(id.Key).AppendMessage(nil)
		}
		ws.WriteMessage(websocket.TextMessage, msg)
		ws.SetReadDeadline(time.Now().Add(auth.ChallengeTimeout))
		_, answer, err := ws.ReadMessage()
		if err == nil {
			err = ch.Verify(answer)
		}
		ws.SetReadDeadline(time.Time{})
		got <- err
		if err != nil {
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(auth.CloseAuthFailed, auth.CloseAuthFailedReason))
			return
		}
		ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, welcomeFmt, id.Peer))
	})
}

func TestDialKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	got := make(chan error, 1)
	f := keyAuthServer(t, false, got)

	c := dial(t, f.URL, &Options{Key: priv, Query: map[string][]string{"device": {"tab1"}}})
	if err := recv(t, got); err != nil {
		t.Fatalf("server refused the answer: %v", err)
	}
	want := KeyID(pub) + ":tab1"
	if c.PeerID() != want || !strings.HasPrefix(want, "k:") || len(KeyID(pub)) != 45 {
		t.Fatalf("PeerID = %q, want %q", c.PeerID(), want)
	}
}

func TestDialKeyRefused(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	got := make(chan error, 1)
	f := keyAuthServer(t, true, got)

	c, err := Dial(testCtx(t), f.URL, &Options{Key: priv})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded with a signature of another nonce")
	}
	if serr := recv(t, got); !errors.Is(serr, auth.ErrAuthFailed) {
		t.Fatalf("server verdict %v, want ErrAuthFailed", serr)
	}
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4003 || ce.Reason != "authentication failed" {
		t.Fatalf("Dial: %v, want CloseError 4003", err)
	}
}

// TestDialChallengeWithoutKey: a relay in auth mode key asks for a
// signature the client cannot give; Dial says so instead of timing out.
func TestDialChallengeWithoutKey(t *testing.T) {
	f := newFakeServer(t, false, func(ws *websocket.Conn, r *http.Request) {
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"challenge","nonce":"abc"}`))
	})
	c, err := Dial(testCtx(t), f.URL, &Options{HandshakeTimeout: 2 * time.Second})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded")
	}
	if !errors.Is(err, ErrNoWelcome) || !strings.Contains(err.Error(), "Options.Key") {
		t.Fatalf("err = %v", err)
	}
}
