package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/config"
)

// maxInitData bounds the initData accepted (Telegram's are well under 4 KiB).
const maxInitData = 8 << 10

// Telegram is auth mode telegram, for Telegram Mini Apps. The client passes
// the Mini App's initData as "Authorization: tma <initData>" or ?tma=. Its
// hash is checked as Telegram specifies: hex HMAC-SHA256 of the
// data-check-string (every key=value pair but hash, sorted by key, joined by
// newlines) under the key HMAC-SHA256("WebAppData", bot token), compared in
// constant time. auth_date must be at most MaxAge old (and not in the future
// beyond Leeway). The peer id is tg:<user.id>, or tg:<user.id>:D with
// ?device=D.
type Telegram struct {
	secret []byte // HMAC-SHA256 of the bot token under "WebAppData"
	maxAge time.Duration
	rooms  Rooms // what every peer may join without a room token
	now    func() time.Time
}

// NewTelegram returns the authenticator for cfg's bot token.
func NewTelegram(cfg config.Config) (*Telegram, error) {
	if cfg.TelegramBotToken == "" {
		return nil, &config.Error{Var: config.Prefix + "TELEGRAM_BOT_TOKEN", Err: errors.New("WSRELAY_AUTH=telegram needs the bot token")}
	}
	if cfg.TelegramMaxAge <= 0 {
		return nil, &config.Error{Var: config.Prefix + "TELEGRAM_MAX_AGE", Err: errors.New("must be positive")}
	}
	m := hmac.New(sha256.New, []byte("WebAppData"))
	m.Write([]byte(cfg.TelegramBotToken))
	return &Telegram{secret: m.Sum(nil), maxAge: cfg.TelegramMaxAge, rooms: defaultRooms(cfg), now: time.Now}, nil
}

// Authenticate implements Authenticator.
func (a *Telegram) Authenticate(r *http.Request) (string, error) {
	id, err := a.Identify(r)
	return id.Peer, err
}

// Identify implements Authenticator.
func (a *Telegram) Identify(r *http.Request) (Identity, error) {
	raw := credential(r, "tma", "tma")
	if raw == "" {
		return Identity{}, ErrNoCredential
	}
	if len(raw) > maxInitData {
		return Identity{}, fmt.Errorf("%w: initData too long", ErrInvalid)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: initData is not a query string", ErrInvalid)
	}
	hash, err := hex.DecodeString(vals.Get("hash"))
	if err != nil || len(hash) != sha256.Size {
		return Identity{}, fmt.Errorf("%w: missing or malformed hash", ErrInvalid)
	}
	keys := make([]string, 0, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return Identity{}, fmt.Errorf("%w: repeated field", ErrInvalid)
		}
		if k != "hash" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	m := hmac.New(sha256.New, a.secret)
	for i, k := range keys {
		if i > 0 {
			m.Write([]byte{'\n'})
		}
		m.Write([]byte(k))
		m.Write([]byte{'='})
		m.Write([]byte(vals.Get(k)))
	}
	if !hmac.Equal(m.Sum(nil), hash) {
		return Identity{}, fmt.Errorf("%w: hash mismatch", ErrInvalid)
	}
	sec, err := strconv.ParseInt(vals.Get("auth_date"), 10, 64)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: missing or malformed auth_date", ErrInvalid)
	}
	age := a.now().Sub(time.Unix(sec, 0))
	if age > a.maxAge {
		return Identity{}, fmt.Errorf("%w: auth_date too old", ErrInvalid)
	}
	if age < -Leeway {
		return Identity{}, fmt.Errorf("%w: auth_date in the future", ErrInvalid)
	}
	var user struct {
		ID json.Number `json:"id"`
	}
	if err := json.Unmarshal([]byte(vals.Get("user")), &user); err != nil {
		return Identity{}, fmt.Errorf("%w: missing or malformed user", ErrInvalid)
	}
	id, err := strconv.ParseInt(user.ID.String(), 10, 64)
	if err != nil || id <= 0 || strings.HasPrefix(user.ID.String(), "+") {
		return Identity{}, fmt.Errorf("%w: missing or malformed user.id", ErrInvalid)
	}
	return withDevice("tg:"+strconv.FormatInt(id, 10), a.rooms, r)
}
