// wsrelay.js: the browser client of wsrelay (protocol version 1).
//
// A dependency-free ES module. It runs in browsers and in Node.js 20 or later
// with the `ws` package (pass its WebSocket class as options.WebSocket).
//
//   import { RelayClient } from '/wsrelay.js';
//   const relay = new RelayClient('ws://localhost:8080/ws', { peer: 'alice' });
//   relay.on('publish', (m) => console.log(m.room, m.from, m.data));
//   await relay.connect();
//   await relay.join('lobby');
//   await relay.publish('lobby', { text: 'hi' }); // resolves on the relay's ack
//
// The client reconnects on its own after a lost connection (exponential
// backoff with jitter). When the relay resumes sessions (protocol 1.1,
// section 10) it comes back to the same session: same peer id, same rooms,
// and every message it had not received is delivered, in order, exactly
// once; a 'resumed' event reports what could not be replayed. Otherwise it
// joins its rooms again. It does not reconnect after close code 4001:
// another connection took over the same peer id, and reconnecting would take
// it back, forever.

/** Binary frame operations (docs/protocol.md section 4). */
export const OP_DIRECT = 1;
export const OP_PUBLISH = 2;
export const OP_BROADCAST = 3;

/** The binary frame version this client speaks. */
export const FRAME_VERSION = 1;

/** Close code sent by the relay to a connection replaced by a newer one. */
export const CLOSE_REPLACED = 4001;

/** Close code of a failed key-auth challenge (auth key). */
export const CLOSE_AUTH_FAILED = 4003;

/** Signed in front of the nonce of a key-auth challenge. */
export const AUTH_CONTEXT = 'wsrelay-auth-v1:';

const PEER_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const ROOM_RE = /^[A-Za-z0-9._:/-]{1,128}$/;

/** Reports whether s is a valid peer id: 1 to 64 of A-Z a-z 0-9 . _ : - */
export function isValidPeerId(s) {
  return typeof s === 'string' && PEER_RE.test(s);
}

/** Reports whether s is a valid room name: 1 to 128 of A-Z a-z 0-9 . _ : / - */
export function isValidRoom(s) {
  return typeof s === 'string' && ROOM_RE.test(s);
}

/**
 * RelayError is a failed request. code is the relay's error code
 * (peer_not_found, not_member, ...) or one of the client's own:
 * ack_timeout (no answer in time), disconnected (the connection was lost
 * before the answer), not_connected (nothing was sent), too_large (over the
 * relay's max_message_bytes, nothing was sent).
 */
export class RelayError extends Error {
  constructor(code, message, id) {
    super(message || code);
    this.name = 'RelayError';
    this.code = code;
    this.id = id;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toBytes(payload) {
  if (payload == null) return new Uint8Array(0);
  if (payload instanceof Uint8Array) return payload;
  if (typeof payload === 'string') return encoder.encode(payload);
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new TypeError('wsrelay: payload must be a Uint8Array, ArrayBuffer, typed array or string');
}

function byte(name, v) {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`wsrelay: ${name} must be an integer 0-255, got ${v}`);
  return v;
}

/**
 * encodeFrame builds a client-to-server binary frame: version 1, op, ctype,
 * flags, from_len 0, to_len, to, payload. `to` is the peer id for OP_DIRECT,
 * the room for OP_PUBLISH and empty for OP_BROADCAST. The payload is copied.
 */
export function encodeFrame({ op, to = '', ctype = 0, flags = 0, payload }) {
  if (op !== OP_DIRECT && op !== OP_PUBLISH && op !== OP_BROADCAST) throw new RangeError(`wsrelay: unknown op ${op}`);
  if (op === OP_DIRECT && !isValidPeerId(to)) throw new TypeError(`wsrelay: invalid peer id ${JSON.stringify(to)}`);
  if (op === OP_PUBLISH && !isValidRoom(to)) throw new TypeError(`wsrelay: invalid room ${JSON.stringify(to)}`);
  if (op === OP_BROADCAST && to !== '') throw new TypeError('wsrelay: a broadcast frame has no destination');
  const body = toBytes(payload);
  const out = new Uint8Array(6 + to.length + body.length);
  out[0] = FRAME_VERSION;
  out[1] = op;
  out[2] = byte('ctype', ctype);
  out[3] = byte('flags', flags);
  out[4] = 0; // from_len: the relay stamps the sender
  out[5] = to.length;
  for (let i = 0; i < to.length; i++) out[6 + i] = to.charCodeAt(i); // ASCII by the checks above
  out.set(body, 6 + to.length);
  return out;
}

/**
 * decodeFrame parses a binary frame (either direction) and returns
 * { version, op, ctype, flags, from, to, payload }. payload is a view into
 * bytes, not a copy. It throws a RangeError on a malformed header.
 */
export function decodeFrame(bytes) {
  const b = toBytes(bytes);
  if (b.length < 6) throw new RangeError('wsrelay: short binary frame');
  if (b[0] !== FRAME_VERSION) throw new RangeError(`wsrelay: binary frame version ${b[0]}, want ${FRAME_VERSION}`);
  const op = b[1];
  if (op !== OP_DIRECT && op !== OP_PUBLISH && op !== OP_BROADCAST) throw new RangeError(`wsrelay: unknown op ${op}`);
  const fromLen = b[4];
  if (b.length < 5 + fromLen + 1) throw new RangeError('wsrelay: short binary frame');
  const from = decoder.decode(b.subarray(5, 5 + fromLen));
  const toAt = 5 + fromLen;
  const toLen = b[toAt];
  if (b.length < toAt + 1 + toLen) throw new RangeError('wsrelay: short binary frame');
  const to = decoder.decode(b.subarray(toAt + 1, toAt + 1 + toLen));
  return { version: b[0], op, ctype: b[2], flags: b[3], from, to, payload: b.subarray(toAt + 1 + toLen) };
}

function base64url(bytes) {
  let bin = '';
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * generateKeyPair makes an Ed25519 key pair for auth key with WebCrypto.
 * The private key is not extractable; store the CryptoKeyPair itself (in
 * IndexedDB, say) to keep the same peer id across visits.
 */
export function generateKeyPair() {
  return globalThis.crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
}

/**
 * keyId resolves with the peer id of an Ed25519 public key (CryptoKey) in
 * auth key: "k:" followed by the unpadded base64url of its 32 raw bytes.
 */
export async function keyId(publicKey) {
  if (publicKey?.algorithm?.name !== 'Ed25519') throw new TypeError('wsrelay: not an Ed25519 public key');
  return 'k:' + base64url(await globalThis.crypto.subtle.exportKey('raw', publicKey));
}

/**
 * signChallenge resolves with the auth message that answers a key-auth
 * challenge: {"type":"auth","sig":SIG}, SIG the unpadded base64url Ed25519
 * signature of AUTH_CONTEXT followed by nonce.
 */
export async function signChallenge(privateKey, nonce) {
  const sig = await globalThis.crypto.subtle.sign({ name: 'Ed25519' }, privateKey, encoder.encode(AUTH_CONTEXT + nonce));
  return JSON.stringify({ type: 'auth', sig: base64url(sig) });
}

/**
 * backoffDelay is the wait before reconnect attempt `attempt` (0 for the
 * first): an exponential step min(max, min * 2^attempt), of which a random
 * half is dropped ("equal jitter") so that clients cut off together do not
 * come back together. random() returns a number in [0, 1).
 */
export function backoffDelay(attempt, min, max, random = Math.random) {
  const step = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

function reportListenerError(err) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(err);
  } else {
    queueMicrotask(() => {
      throw err;
    });
  }
}

const DEFAULTS = {
  reconnect: true,
  minBackoff: 500,
  maxBackoff: 30000,
  ackTimeout: 10000,
  pingInterval: 0, // 0: the relay's heartbeat_ms from welcome
  pongTimeout: 10000,
  keepPeer: true,
};

/**
 * RelayClient is one connection to a wsrelay server, kept open across network
 * failures and relay restarts. See wsrelay.d.ts for the full contract.
 */
export class RelayClient {
  constructor(url, options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.url = url;
    this.WebSocket = this.options.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new TypeError('wsrelay: no WebSocket; in Node.js pass options.WebSocket (the ws package)');
    }
    this.random = this.options.random || Math.random;
    /** @type {'idle'|'connecting'|'open'|'reconnecting'|'closed'} */
    this.state = 'idle';
    this.peer = null;
    this.welcome = null;
    /** Whether the connection negotiated permessage-deflate (the browser offers it by itself). */
    this.compressed = false;
    this.attempt = 0;
    this._listeners = new Map();
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, room?, kind}
    this._wanted = new Map(); // rooms to be in -> room token or undefined, joined again after a reconnect
    this._presence = new Map(); // room -> Set of the other members
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._lastRecv = 0;
    this._opened = null;
    this._key = null; // options.keyPair's public key, base64url, once exported
    this._token = null; // the session's resume token (a secret), when the relay resumes sessions
    this._greeted = false; // the current socket's welcome arrived: what follows is counted
    /** Data messages received in this session (every message after the welcome). */
    this.received = 0;
  }

  /** on subscribes fn to events of type and returns a function that unsubscribes it. */
  on(type, fn) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** off unsubscribes fn from events of type. */
  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  _emit(type, ev) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(ev);
      } catch (err) {
        // A failing listener must not break the connection or the other
        // listeners; report it the way EventTarget does.
        reportListenerError(err);
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  /**
   * connect opens the connection and resolves with the welcome message once
   * the relay greeted the client. It keeps retrying with backoff when
   * options.reconnect is on; it rejects when the client is closed first.
   * Calling it again returns the same promise.
   */
  connect() {
    if (!this._opened) {
      this._opened = {};
      this._opened.promise = new Promise((resolve, reject) => {
        this._opened.resolve = resolve;
        this._opened.reject = reject;
      });
      this._opened.promise.catch(() => {}); // a caller that never awaits must not see an unhandled rejection
      try {
        this._open();
      } catch (err) {
        this._opened = null;
        this._setState('idle');
        throw err;
      }
    }
    return this._opened.promise;
  }

  _wsURL() {
    const base = globalThis.location ? globalThis.location.href : undefined;
    const u = new URL(this.url, base);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    if (u.protocol === 'https:') u.protocol = 'wss:';
    const o = this.options;
    const q = u.searchParams;
    if (o.token) q.set('token', o.token);
    if (o.tma) q.set('tma', o.tma);
    if (o.device) q.set('device', o.device);
    if (this._key) q.set('key', this._key);
    const peer = o.peer || (o.keepPeer && !o.token && !o.tma && !o.keyPair ? this.peer : null);
    if (peer) q.set('peer', peer);
    for (const [k, v] of Object.entries(o.params || {})) q.set(k, String(v));
    if (this._token && o.resume !== false) {
      q.set('resume', this._token);
      q.set('received', String(this.received));
    }
    return u.toString();
  }

  _open() {
    this._setState(this.attempt === 0 && !this.welcome ? 'connecting' : 'reconnecting');
    if (this.options.keyPair && !this._key) {
      // WebCrypto exports the public key asynchronously: once, then open.
      keyId(this.options.keyPair.publicKey)
        .then(
          (id) => {
            this._key = id.slice(2);
            if (this.state !== 'closed') this._open();
          },
          (err) => this._finish(new RelayError('bad_key', `wsrelay: keyPair: ${err.message}`)),
        )
        .catch((err) => this._finish(err)); // a malformed URL, thrown by _open
      return;
    }
    const url = this._wsURL(); // a malformed URL throws here, out of connect()
    let ws;
    try {
      ws = new this.WebSocket(url);
    } catch (err) {
      this._lost(1006, String(err && err.message ? err.message : err));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._greeted = false;
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => {
      if (this._ws === ws) this._lost(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // a close event follows; its code tells the story
  }

  _detach() {
    const ws = this._ws;
    this._ws = null;
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._pingTimer = this._pongTimer = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onopen = null;
      // Keep a no-op error handler: closing a socket that is still connecting
      // fires an error event, and Node's ws package throws an unhandled one.
      ws.onerror = () => {};
    }
    return ws;
  }

  // _lost handles the end of the current socket, whatever the cause. own is
  // true when the client itself gave up on the socket (no answer to a ping).
  _lost(code, reason, own = false) {
    const wasOpen = this.state === 'open';
    this._detach();
    // These closes from the relay end the session there (shutdown, a
    // violation, a replacement, the server API): there is nothing left to
    // resume. A 1000 from the relay can be its liveness timeout, which keeps
    // the session; so does the client's own 4000 on a dead link, the very
    // case resume is for.
    if (!own && (code === 1001 || (code >= 1002 && code <= 1009 && code !== 1005 && code !== 1006) || (code >= 4000 && code <= 4999))) {
      this._token = null;
    }
    if (!this._token) this._presence.clear(); // a resumed session keeps its rooms and replays their news
    this._failPending('disconnected', 'connection lost before the relay answered');
    const replaced = code === CLOSE_REPLACED;
    const again = this.options.reconnect && !replaced && this.state !== 'closed';
    let delay = 0;
    if (again) {
      delay = backoffDelay(this.attempt, this.options.minBackoff, this.options.maxBackoff, this.random);
      this.attempt++;
    }
    this._emit('close', { code, reason: reason || '', reconnect: again, delay, wasOpen });
    if (!again) {
      this._finish(replaced ? new RelayError('replaced', 'another connection took over this peer id') : new RelayError('closed', `connection closed (${code})`));
      return;
    }
    this._setState('reconnecting');
    this._emit('reconnecting', { attempt: this.attempt, delay });
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._open();
    }, delay);
  }

  _finish(err) {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._setState('closed');
    if (this._opened && !this.welcome) this._opened.reject(err);
  }

  /**
   * close closes the connection with code (default 1000) and stops
   * reconnecting. Pending requests fail with code disconnected.
   */
  close(code = 1000, reason = '') {
    if (this.state === 'closed') return;
    const ws = this._detach();
    this._token = null; // close 1000 ends the session on the relay
    this._presence.clear();
    this._failPending('disconnected', 'client closed');
    this._finish(new RelayError('closed', 'client closed'));
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    }
    this._emit('close', { code, reason, reconnect: false, delay: 0, wasOpen: false });
  }

  _failPending(code, message) {
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      this._pending.delete(id);
      p.reject(new RelayError(code, message, id));
    }
  }

  _onMessage(data) {
    this._lastRecv = Date.now();
    if (this._pongTimer) {
      // Any frame proves the link alive, not only the pong.
      clearTimeout(this._pongTimer);
      this._pongTimer = null;
    }
    if (!this._pingTimer && this.state === 'open') this._schedulePing();
    if (this._greeted) this.received++; // the relay numbers every message after the welcome
    if (typeof data !== 'string') {
      if (!(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) return; // Blob: binaryType not honoured
      let frame;
      try {
        frame = decodeFrame(data);
      } catch (err) {
        this._emit('error', new RelayError('bad_frame', err.message));
        return;
      }
      this._emit('binary', frame);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._emit('error', new RelayError('bad_json', 'the relay sent invalid JSON'));
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    this._emit('message', msg);
    switch (msg.type) {
      case 'welcome':
        this._onWelcome(msg);
        break;
      case 'challenge':
        this._answerChallenge(msg.nonce);
        break;
      case 'joined': {
        const peers = new Set(msg.peers || []);
        this._presence.set(msg.room, peers);
        this._settleRoom('join', msg.room, [...peers]);
        this._emit('joined', msg);
        this._emit('presence', { room: msg.room, peers: [...peers] });
        break;
      }
      case 'left':
        this._presence.delete(msg.room);
        this._settleRoom('leave', msg.room, undefined);
        this._emit('left', msg);
        this._emit('presence', { room: msg.room, peers: [] });
        break;
      case 'peer_joined': {
        const set = this._presence.get(msg.room);
        if (set) set.add(msg.peer);
        this._emit('peer_joined', msg);
        this._emit('presence', { room: msg.room, peers: set ? [...set] : [msg.peer], joined: msg.peer });
        break;
      }
      case 'peer_left': {
        const set = this._presence.get(msg.room);
        if (set) set.delete(msg.peer);
        this._emit('peer_left', msg);
        this._emit('presence', { room: msg.room, peers: set ? [...set] : [], left: msg.peer });
        break;
      }
      case 'ack':
        this._settleId(msg.id, null, undefined);
        break;
      case 'pong':
        this._settlePing(msg.time); // a pong carries no id: it answers the oldest ping
        this._emit('pong', msg);
        break;
      case 'error': {
        const err = new RelayError(msg.code, msg.message, msg.id);
        if (msg.id !== undefined && this._settleId(msg.id, err)) break;
        if (msg.code === 'rate_limited') {
          // The relay dropped at least one message and says so once, without
          // an id. It answers every request it accepts; the ones still
          // unanswered now may be those it dropped: fail them at once rather
          // than after the whole ack timeout.
          this._failPending('rate_limited', 'the relay\'s rate limit may have dropped this request; it was not acknowledged');
        }
        this._emit('error', err);
        break;
      }
      case 'overflow':
        this._emit('overflow', { dropped: msg.dropped });
        break;
      case 'direct':
      case 'publish':
      case 'broadcast':
        this._emit(msg.type, msg);
        break;
    }
  }

  // _answerChallenge signs the nonce of a key-auth challenge and sends the
  // answer on the socket that asked, if it is still the current one. Without
  // a keyPair the relay closes the connection (4003) when its time is up.
  _answerChallenge(nonce) {
    const ws = this._ws;
    const kp = this.options.keyPair;
    if (!kp) {
      this._emit('error', new RelayError('auth_failed', 'the relay asks for key auth: pass options.keyPair'));
      return;
    }
    signChallenge(kp.privateKey, String(nonce)).then(
      (answer) => {
        if (this._ws === ws) ws.send(answer);
      },
      (err) => this._emit('error', new RelayError('auth_failed', `wsrelay: signing the challenge: ${err.message}`)),
    );
  }

  _onWelcome(msg) {
    const again = this.welcome !== null;
    this.welcome = msg;
    // Browsers offer permessage-deflate on their own and a relay with
    // WSRELAY_COMPRESSION=true accepts it; compression is then invisible
    // here, and the negotiated extension is only reported.
    this.compressed = /permessage-deflate/i.test((this._ws && this._ws.extensions) || '');
    this.peer = msg.peer;
    this.attempt = 0;
    this._greeted = true;
    const resumed = msg.resumed === true;
    if (!resumed) {
      this.received = 0; // a new session
      this._presence.clear();
    }
    this._token = typeof msg.resume === 'string' ? msg.resume : null;
    this._setState('open');
    this._schedulePing();
    if (this._opened) this._opened.resolve(msg);
    this._emit('open', msg);
    if (again) this._emit('resumed', { resumed, missed: resumed ? msg.missed || 0 : 0, rooms: resumed ? msg.rooms || [] : [...this._wanted.keys()] });
    // A resumed session is still in its rooms; a new one joins them again.
    const inRooms = new Set(resumed ? msg.rooms || [] : []);
    for (const [room, token] of this._wanted) {
      if (inRooms.has(room)) continue;
      this._sendJoin(room, token).catch((err) => {
        if (err.code !== 'disconnected') this._emit('error', err);
      });
    }
  }

  _pingMessage(id) {
    const m = { type: 'ping' };
    if (this._token) m.received = this.received; // lets the relay drop what it kept for a resume
    if (id !== undefined) m.id = id;
    return m;
  }

  // Pending requests: every request that can fail carries a numeric id; the
  // relay echoes it in the ack or error. join and leave are answered by
  // joined/left, which carry no id, so they are also matched by room.
  _request(msg, kind, room, timeout) {
    if (this.state !== 'open' || !this._ws) {
      return Promise.reject(new RelayError('not_connected', 'not connected to the relay'));
    }
    const id = this._nextId++;
    const text = JSON.stringify({ ...msg, id });
    const max = this.welcome && this.welcome.max_message_bytes;
    if (max && text.length > max / 3 && encoder.encode(text).length > max) {
      return Promise.reject(new RelayError('too_large', `message over the relay's limit of ${max} bytes`));
    }
    return new Promise((resolve, reject) => {
      const t = timeout ?? this.options.ackTimeout;
      const timer = t > 0 ? setTimeout(() => {
        this._pending.delete(id);
        reject(new RelayError('ack_timeout', `no answer from the relay within ${t} ms`, id));
      }, t) : null;
      this._pending.set(id, { resolve, reject, timer, kind, room });
      try {
        this._ws.send(text);
      } catch {
        this._pending.delete(id);
        clearTimeout(timer);
        reject(new RelayError('not_connected', 'the connection is closing', id));
      }
    });
  }

  _settleId(id, err, value) {
    const p = this._pending.get(id);
    if (!p) return false;
    this._pending.delete(id);
    clearTimeout(p.timer);
    if (err) {
      if (p.kind === 'join') this._wanted.delete(p.room);
      p.reject(err);
    } else {
      p.resolve(value);
    }
    return true;
  }

  _settleRoom(kind, room, value) {
    for (const [id, p] of this._pending) {
      if (p.kind === kind && p.room === room) this._settleId(id, null, value);
    }
  }

  _settlePing(time) {
    for (const [id, p] of this._pending) {
      if (p.kind === 'ping') {
        this._settleId(id, null, time);
        return;
      }
    }
  }

  _sendJoin(room, token, timeout) {
    const msg = token === undefined ? { type: 'join', room } : { type: 'join', room, token };
    return this._request(msg, 'join', room, timeout);
  }

  /**
   * join makes the client a member of room, now and after every reconnect,
   * and resolves with the other members' ids. While the client is
   * reconnecting it resolves once the room is joined on the new connection,
   * or once the session resumed if it is still in the room. token is a room
   * token from the application's backend (a JWT for this peer and room): the
   * join then rests on it alone. It is sent again on every re-join after a
   * reconnect, so it must outlive the visit or be replaced by calling join
   * again with a fresh one.
   */
  join(room, { timeout, token } = {}) {
    if (!isValidRoom(room)) return Promise.reject(new TypeError(`wsrelay: invalid room ${JSON.stringify(room)}`));
    if (token !== undefined && typeof token !== 'string') return Promise.reject(new TypeError('wsrelay: token must be a string'));
    this._wanted.set(room, token);
    if (this.state === 'open') return this._sendJoin(room, token, timeout);
    // Not connected: the join goes out with the others after the welcome.
    return new Promise((resolve, reject) => {
      const t = timeout ?? this.options.ackTimeout;
      let timer = null;
      const done = () => {
        clearTimeout(timer);
        offJoined();
        offResumed();
        offClose();
      };
      const offJoined = this.on('joined', (m) => {
        if (m.room === room) {
          done();
          resolve(m.peers || []);
        }
      });
      // A resumed session still in room is not sent a join: no joined comes.
      const offResumed = this.on('resumed', (ev) => {
        if (ev.resumed && ev.rooms.includes(room)) {
          done();
          resolve(this.peersIn(room));
        }
      });
      const offClose = this.on('state', (s) => {
        if (s === 'closed') {
          done();
          reject(new RelayError('disconnected', 'client closed'));
        }
      });
      if (t > 0) {
        timer = setTimeout(() => {
          done();
          reject(new RelayError('ack_timeout', `room ${room} not joined within ${t} ms`));
        }, t);
      }
    });
  }

  /** leave stops being a member of room and no longer joins it after reconnects. */
  leave(room, { timeout } = {}) {
    this._wanted.delete(room);
    if (this.state !== 'open') {
      this._presence.delete(room);
      return Promise.resolve();
    }
    return this._request({ type: 'leave', room }, 'leave', room, timeout);
  }

  /** rooms lists the rooms the client is a member of (or will join again after a reconnect). */
  rooms() {
    return [...this._wanted.keys()];
  }

  /** peersIn returns the other members of room as last reported by the relay. */
  peersIn(room) {
    const set = this._presence.get(room);
    return set ? [...set] : [];
  }

  _send(msg, opts = {}) {
    if (opts.ack === false) {
      if (this.state !== 'open' || !this._ws) return Promise.reject(new RelayError('not_connected', 'not connected to the relay'));
      this._ws.send(JSON.stringify(msg));
      return Promise.resolve();
    }
    return this._request(msg, 'send', undefined, opts.timeout);
  }

  /**
   * publish sends data (any JSON value) to the other members of room. It
   * resolves when the relay acknowledges that the message was routed, or,
   * with { ack: false }, as soon as it was sent.
   */
  publish(room, data, opts) {
    return this._send({ type: 'publish', room, data: data ?? null }, opts);
  }

  /** direct sends data to peer `to`; resolves on the relay's ack (see publish). */
  direct(to, data, opts) {
    return this._send({ type: 'direct', to, data: data ?? null }, opts);
  }

  /** broadcast sends data to every other peer (when the relay allows it); resolves on the ack. */
  broadcast(data, opts) {
    return this._send({ type: 'broadcast', data: data ?? null }, opts);
  }

  /**
   * sendBinary sends a binary frame (see encodeFrame). Binary frames are not
   * acknowledged; an invalid one is answered by an 'error' event (bad_frame,
   * not_member, ...). It throws RelayError not_connected when not open.
   */
  sendBinary(frame) {
    const bytes = frame instanceof Uint8Array ? frame : encodeFrame(frame);
    if (this.state !== 'open' || !this._ws) throw new RelayError('not_connected', 'not connected to the relay');
    this._ws.send(bytes);
  }

  /** ping asks the relay for a pong and resolves with the server time (Unix ms). */
  ping({ timeout } = {}) {
    return this._request(this._pingMessage(), 'ping', undefined, timeout);
  }

  // Liveness: browsers cannot send WebSocket pings, so after pingInterval
  // without any frame from the relay the client sends {"type":"ping"}; if
  // nothing arrives within pongTimeout the link is dead and the client
  // reconnects without waiting for TCP to notice.
  _schedulePing() {
    clearTimeout(this._pingTimer);
    const every = this.options.pingInterval || (this.welcome && this.welcome.heartbeat_ms) || 25000;
    const wait = Math.max(0, every - (Date.now() - this._lastRecv));
    this._pingTimer = setTimeout(() => {
      this._pingTimer = null;
      if (this.state !== 'open' || !this._ws) return;
      if (Date.now() - this._lastRecv < every) {
        this._schedulePing();
        return;
      }
      try {
        this._ws.send(JSON.stringify(this._pingMessage()));
      } catch {
        // the close event follows
      }
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        const ws = this._ws;
        this._lost(4000, 'no answer to ping', true);
        if (ws) {
          try {
            ws.close(4000, 'no answer to ping');
          } catch {
            // already closing
          }
        }
      }, this.options.pongTimeout);
      // The next ping is scheduled by the next frame that arrives.
    }, wait);
  }
}
