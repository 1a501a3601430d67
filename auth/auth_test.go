package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/config"
)

func TestNone(t *testing.T) {
	a, err := New(config.Config{Auth: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.Authenticate(httptest.NewRequest("GET", "/ws?peer=alice", nil)); id != "alice" || err != nil {
		t.Fatalf("?peer=alice: %q %v", id, err)
	}
	id1, _ := a.Authenticate(httptest.NewRequest("GET", "/ws", nil))
	id2, _ := a.Authenticate(httptest.NewRequest("GET", "/ws", nil))
	if len(id1) != 22 || id1 == id2 {
		t.Fatalf("random ids %q %q", id1, id2)
	}
	if _, err := a.Authenticate(httptest.NewRequest("GET", "/ws?peer=a%20b", nil)); !errors.Is(err, ErrBadPeerID) {
		t.Fatalf("malformed peer: %v", err)
	}
}

// TestTelegramAuthDate checks the auth_date window at its edges with a
// fixed clock: MaxAge old is accepted, a second more is not; Leeway in the
// future is accepted, a second more is not.
func TestTelegramAuthDate(t *testing.T) {
	const token = "42:secret"
	a, err := NewTelegram(config.Config{TelegramBotToken: token, TelegramMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	a.now = func() time.Time { return now }
	sign := func(authDate int64) string {
		user := `{"id":7}`
		dcs := "auth_date=" + strconv.FormatInt(authDate, 10) + "\nuser=" + user
		k := hmac.New(sha256.New, []byte("WebAppData"))
		k.Write([]byte(token))
		m := hmac.New(sha256.New, k.Sum(nil))
		m.Write([]byte(dcs))
		return url.Values{"auth_date": {strconv.FormatInt(authDate, 10)}, "user": {user}, "hash": {hex.EncodeToString(m.Sum(nil))}}.Encode()
	}
	cases := []struct {
		age time.Duration
		ok  bool
	}{
		{0, true},
		{time.Hour, true},
		{time.Hour + time.Second, false},
		{-Leeway, true},
		{-Leeway - time.Second, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/ws?tma="+url.QueryEscape(sign(now.Add(-c.age).Unix())), nil)
		id, err := a.Authenticate(r)
		if c.ok != (err == nil) || (c.ok && id != "tg:7") {
			t.Errorf("age %v: %q %v, want ok=%v", c.age, id, err, c.ok)
		}
	}
}
