package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
)

// Prefix starts every path the Handler serves.
const Prefix = "/api/"

const roomsPrefix = Prefix + "rooms/"

// fanoutHandoff is the number of recipients from which a call hands its
// writes to the drain workers (router.Batch.Handoff) instead of writing on
// the HTTP executor.
const fanoutHandoff = 32

// Config is what the API takes from the server's configuration.
type Config struct {
	// Key is WSRELAY_API_KEY, the bearer token every call must carry. The
	// caller checks its length (config.MinAPIKeyLen).
	Key string
	// MaxBodyBytes is WSRELAY_MAX_MESSAGE_BYTES, the largest body accepted.
	MaxBodyBytes int
}

// Deps are the Handler's collaborators, made by the caller.
type Deps struct {
	Router *router.Router
	// Metrics receives wsrelay_api_requests_total.
	Metrics *vm.Set
	// Logger gets refused calls at debug level, rate-limited; nil discards.
	Logger *slog.Logger
}

// Handler serves the server API. Safe for concurrent use.
type Handler struct {
	// Set at construction.
	keyHash  [sha256.Size]byte
	maxBody  int
	router   *router.Router
	log      *slog.Logger
	requests [numCalls][numStatuses]*vm.Counter
	refused  rate.Sometimes
}

// The calls and answer statuses, labels of wsrelay_api_requests_total.
type call int

const (
	callPublish call = iota
	callDirect
	callBroadcast
	callDisconnect
	callRooms
	callOther // an unknown call, or one refused before it was known
	numCalls
)

var callNames = [numCalls]string{"publish", "direct", "broadcast", "disconnect", "rooms", "other"}

var statuses = [...]int{
	http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound,
	http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
}

const numStatuses = len(statuses)

// New returns a Handler and registers its counters in deps.Metrics.
func New(cfg Config, deps Deps) *Handler {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		keyHash: sha256.Sum256([]byte(cfg.Key)),
		maxBody: cfg.MaxBodyBytes,
		router:  deps.Router,
		log:     log,
		refused: rate.Sometimes{First: 10, Interval: time.Second},
	}
	for c := range h.requests {
		for i, st := range statuses {
			h.requests[c][i] = deps.Metrics.NewCounter(fmt.Sprintf(
				`wsrelay_api_requests_total{call=%q,status="%d"}`, callNames[c], st))
		}
	}
	return h
}

// requestCount returns how many calls of the named kind were answered with
// status (for tests).
func (h *Handler) requestCount(name string, status int) uint64 {
	for c, n := range callNames {
		if n == name {
			for i, st := range statuses {
				if st == status {
					return h.requests[c][i].Get()
				}
			}
		}
	}
	return 0
}

// ServeHTTP answers one call. Paths outside Prefix are not found.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wsrelay-api"`)
		h.fail(w, r, callOther, errUnauthorized)
		return
	}
	path := r.URL.EscapedPath()
	if strings.HasPrefix(path, roomsPrefix) {
		h.rooms(w, r, path)
		return
	}
	c := callOther
	switch path {
	case Prefix + "publish":
		c = callPublish
	case Prefix + "direct":
		c = callDirect
	case Prefix + "broadcast":
		c = callBroadcast
	case Prefix + "disconnect":
		c = callDisconnect
	default:
		h.fail(w, r, callOther, errUnknownCall)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, c, &failure{http.StatusMethodNotAllowed, codeBadRequest, "use POST"})
		return
	}
	body, f := h.readBody(r)
	if f != nil {
		h.fail(w, r, c, f)
		return
	}
	switch c {
	case callPublish:
		h.publish(w, r, body)
	case callDirect:
		h.direct(w, r, body)
	case callBroadcast:
		h.broadcast(w, r, body)
	default:
		h.disconnect(w, r, body)
	}
}

// authorized compares the bearer token with the key in constant time: the
// hashes are compared, so neither the key's length nor a common prefix
// shows in the time taken.
func (h *Handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], h.keyHash[:]) == 1
}

// readBody reads at most maxBody bytes of the request's body.
func (h *Handler) readBody(r *http.Request) ([]byte, *failure) {
	tooLarge := &failure{http.StatusRequestEntityTooLarge, codeBadRequest,
		fmt.Sprintf("body larger than %d bytes (WSRELAY_MAX_MESSAGE_BYTES)", h.maxBody)}
	if r.ContentLength > int64(h.maxBody) {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.maxBody)+1))
	switch {
	case err != nil:
		return nil, badField("cannot read the body")
	case len(body) > h.maxBody:
		return nil, tooLarge
	}
	return body, nil
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request, body []byte) {
	req, f := parsePublish(body)
	if f != nil {
		h.fail(w, r, callPublish, f)
		return
	}
	buf := frame.NewBuf(len(req.Data) + len(req.Room) + len(Sender) + 48)
	buf.B = frame.AppendPublish(buf.B, req.Room, Sender, req.Data)
	buf.Finish(frame.OpText)
	bt := router.Batch{Handoff: fanoutHandoff}
	n := h.router.PublishAll(req.Room, buf, &bt)
	bt.Flush()
	buf.Release()
	h.ok(w, callPublish, recipients{n})
}

func (h *Handler) direct(w http.ResponseWriter, r *http.Request, body []byte) {
	req, f := parseDirect(body)
	if f != nil {
		h.fail(w, r, callDirect, f)
		return
	}
	buf := frame.NewBuf(len(req.Data) + len(Sender) + 40)
	buf.B = frame.AppendDirect(buf.B, Sender, req.Data)
	buf.Finish(frame.OpText)
	var bt router.Batch
	err := h.router.Direct(req.To, buf, &bt)
	bt.Flush()
	buf.Release()
	if err != nil {
		h.fail(w, r, callDirect, errPeerNotFound)
		return
	}
	h.ok(w, callDirect, recipients{1})
}

func (h *Handler) broadcast(w http.ResponseWriter, r *http.Request, body []byte) {
	req, f := parseBroadcast(body)
	if f != nil {
		h.fail(w, r, callBroadcast, f)
		return
	}
	buf := frame.NewBuf(len(req.Data) + len(Sender) + 40)
	buf.B = frame.AppendBroadcast(buf.B, Sender, req.Data)
	buf.Finish(frame.OpText)
	bt := router.Batch{Handoff: fanoutHandoff}
	n := h.router.BroadcastAll(buf, &bt)
	bt.Flush()
	buf.Release()
	h.ok(w, callBroadcast, recipients{n})
}

func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request, body []byte) {
	peer, code, reason, f := parseDisconnect(body)
	if f != nil {
		h.fail(w, r, callDisconnect, f)
		return
	}
	if err := h.router.Disconnect(peer, code, reason); err != nil {
		h.fail(w, r, callDisconnect, errPeerNotFound)
		return
	}
	h.ok(w, callDisconnect, disconnected{peer, code, reason})
}

func (h *Handler) rooms(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, callRooms, &failure{http.StatusMethodNotAllowed, codeBadRequest, "use GET"})
		return
	}
	room, f := parseRoomPath(path)
	if f != nil {
		h.fail(w, r, callRooms, f)
		return
	}
	peers := h.router.RoomMembers(room)
	if len(peers) == 0 {
		h.fail(w, r, callRooms, errEmptyRoom)
		return
	}
	h.ok(w, callRooms, roomMembers{room, peers})
}

// Answers of successful calls.
type (
	recipients struct {
		Recipients int `json:"recipients"`
	}
	disconnected struct {
		Peer   string `json:"peer"`
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	roomMembers struct {
		Room  string   `json:"room"`
		Peers []string `json:"peers"`
	}
)

func (h *Handler) ok(w http.ResponseWriter, c call, v any) {
	h.count(c, http.StatusOK)
	writeJSON(w, http.StatusOK, v)
}

// fail answers a refused call with its status and {"error","message"}.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, c call, f *failure) {
	h.count(c, f.status)
	h.refused.Do(func() {
		h.log.Debug("api call refused", "path", r.URL.Path, "status", f.status, "code", string(f.code),
			"remote", r.RemoteAddr)
	})
	writeJSON(w, f.status, struct {
		Error   code   `json:"error"`
		Message string `json:"message"`
	}{f.code, f.message})
}

func (h *Handler) count(c call, status int) {
	for i, st := range statuses {
		if st == status {
			h.requests[c][i].Inc()
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	body = append(body, '\n')
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
