// Types for wsrelay.js, the browser client of wsrelay (protocol version 1).

export const OP_DIRECT: 1;
export const OP_PUBLISH: 2;
export const OP_BROADCAST: 3;
export const FRAME_VERSION: 1;
export const CLOSE_REPLACED: 4001;
/** Close code of a failed key-auth challenge (auth key). */
export const CLOSE_AUTH_FAILED: 4003;
/** Signed in front of the nonce of a key-auth challenge. */
export const AUTH_CONTEXT: 'wsrelay-auth-v1:';

export type Op = typeof OP_DIRECT | typeof OP_PUBLISH | typeof OP_BROADCAST;

/** Any JSON value; relayed byte for byte. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

export function isValidPeerId(s: unknown): s is string;
export function isValidRoom(s: unknown): s is string;

/** Error codes sent by the relay, plus the client's own. */
export type ErrorCode =
  | 'bad_json' | 'unknown_type' | 'bad_request' | 'bad_frame' | 'peer_not_found' | 'not_member'
  | 'forbidden' | 'rate_limited' | 'too_many_rooms' | 'room_full' | 'type_not_allowed'
  | 'ack_timeout' | 'disconnected' | 'not_connected' | 'too_large' | 'replaced' | 'closed'
  | 'auth_failed' | 'bad_key';

export class RelayError extends Error {
  constructor(code: ErrorCode | string, message?: string, id?: number | string);
  readonly name: 'RelayError';
  /** The relay's error code or one of the client's own (ack_timeout, disconnected, not_connected, too_large, replaced, closed). */
  code: ErrorCode | string;
  /** The id of the request that failed, when known. */
  id?: number | string;
}

export type Payload = Uint8Array | ArrayBuffer | ArrayBufferView | string;

export interface OutgoingFrame {
  op: Op;
  /** Peer id (OP_DIRECT), room (OP_PUBLISH), empty (OP_BROADCAST). */
  to?: string;
  /** Application content type, 0-255 (0 = untyped). */
  ctype?: number;
  /** Opaque to the relay, 0-255, delivered unchanged. */
  flags?: number;
  payload?: Payload;
}

export interface Frame {
  version: number;
  op: Op;
  ctype: number;
  flags: number;
  /** Sender's peer id (server to client). */
  from: string;
  /** Room for OP_PUBLISH, empty for OP_DIRECT and OP_BROADCAST (server to client). */
  to: string;
  /** A view into the received bytes, not a copy. */
  payload: Uint8Array;
}

/** Builds a client-to-server binary frame (from_len 0). Throws on invalid fields. */
export function encodeFrame(frame: OutgoingFrame): Uint8Array;
/** Parses a binary frame. Throws RangeError on a malformed header. */
export function decodeFrame(bytes: Uint8Array | ArrayBuffer | ArrayBufferView): Frame;
/** Delay in ms before reconnect attempt `attempt` (0-based): equal-jitter exponential backoff. */
export function backoffDelay(attempt: number, min: number, max: number, random?: () => number): number;

/** Makes an Ed25519 key pair for auth key with WebCrypto; the private key is not extractable. */
export function generateKeyPair(): Promise<CryptoKeyPair>;
/** The auth key peer id of an Ed25519 public key: "k:" + unpadded base64url of its 32 bytes. Rejects with a TypeError for another kind of key. */
export function keyId(publicKey: CryptoKey): Promise<string>;
/** The auth message answering a key-auth challenge: {"type":"auth","sig":...}, signing AUTH_CONTEXT + nonce. */
export function signChallenge(privateKey: CryptoKey, nonce: string): Promise<string>;

/** What the client needs of a WebSocket: the browser's, or the ws package's in Node.js. */
export interface WebSocketLike {
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  onopen: ((ev: any) => void) | null;
}

export interface RelayClientOptions {
  /** WebSocket constructor; defaults to globalThis.WebSocket. In Node.js 20 pass the ws package's. */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Peer id to ask for (auth none). */
  peer?: string;
  /** Token for auth jwt, sent as ?token= (browsers cannot set headers on a WebSocket). */
  token?: string;
  /** Telegram Mini App initData for auth telegram, sent as ?tma=. */
  tma?: string;
  /**
   * Ed25519 key pair for auth key (from generateKeyPair, or WebCrypto's
   * generateKey with 'Ed25519'): the public key goes as ?key=, the client
   * answers the relay's challenge with the private key, and the peer id is
   * keyId(publicKey) (with device: keyId + ':' + device).
   */
  keyPair?: CryptoKeyPair;
  /** Device suffix for jwt, telegram and key peer ids, sent as ?device=. */
  device?: string;
  /** Extra query parameters. */
  params?: Record<string, string | number | boolean>;
  /** Reconnect after a lost connection (default true). Never after close code 4001. */
  reconnect?: boolean;
  /** First reconnect step in ms (default 500). */
  minBackoff?: number;
  /** Largest reconnect step in ms (default 30000). */
  maxBackoff?: number;
  /** Time in ms to wait for an ack, joined, left or pong (default 10000; 0 = forever). */
  ackTimeout?: number;
  /** Idle time in ms after which the client pings (default: the relay's heartbeat_ms). */
  pingInterval?: number;
  /** Time in ms to wait for any frame after a ping before the link is declared dead (default 10000). */
  pongTimeout?: number;
  /** With auth none and no peer option, reconnect with the id the relay assigned (default true). */
  keepPeer?: boolean;
  /**
   * Resume the session after a lost connection when the relay offers it
   * (default true): same peer id and rooms, every message not yet received
   * delivered in order, a 'resumed' event. With false a reconnect starts a
   * new session and joins the rooms again.
   */
  resume?: boolean;
  /** Random source in [0, 1) for the backoff jitter (default Math.random). */
  random?: () => number;
}

export interface Welcome {
  type: 'welcome';
  peer: string;
  server: string;
  heartbeat_ms: number;
  timeout_ms: number;
  max_message_bytes: number;
  queue_size: number;
  /** The session's resume token, a secret (when the relay resumes sessions). */
  resume?: string;
  /** Whether this connection resumed the session. */
  resumed?: boolean;
  /** A resumed session's rooms. */
  rooms?: string[];
  /** Messages of a resumed session that could not be replayed. */
  missed?: number;
}

export interface ResumedEvent {
  /** true: the relay resumed the session; false: a new session, whose rooms the client joins again. */
  resumed: boolean;
  /** Messages sent while the connection was down that could not be delivered (0 for a new session). */
  missed: number;
  /** The session's rooms (resumed), or the rooms being joined again. */
  rooms: string[];
}

export interface DirectMessage { type: 'direct'; from: string; data: JSONValue }
export interface PublishMessage { type: 'publish'; room: string; from: string; data: JSONValue }
export interface BroadcastMessage { type: 'broadcast'; from: string; data: JSONValue }
export interface JoinedMessage { type: 'joined'; room: string; peers: string[] }
export interface LeftMessage { type: 'left'; room: string }
export interface PeerJoinedMessage { type: 'peer_joined'; room: string; peer: string }
export interface PeerLeftMessage { type: 'peer_left'; room: string; peer: string }
export interface PongMessage { type: 'pong'; time: number }

export interface PresenceEvent {
  room: string;
  /** The other members now. */
  peers: string[];
  /** Set when this event is a peer joining. */
  joined?: string;
  /** Set when this event is a peer leaving. */
  left?: string;
}

export interface CloseEvent {
  code: number;
  reason: string;
  /** Whether the client will reconnect, after `delay` ms. */
  reconnect: boolean;
  delay: number;
  /** Whether the connection had been welcomed. */
  wasOpen: boolean;
}

export type State = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface RelayEvents {
  /** Welcomed by the relay (first connection and every reconnect). */
  open: Welcome;
  close: CloseEvent;
  reconnecting: { attempt: number; delay: number };
  state: State;
  /** Every JSON message from the relay. */
  message: { type: string; [key: string]: unknown };
  direct: DirectMessage;
  publish: PublishMessage;
  broadcast: BroadcastMessage;
  binary: Frame;
  joined: JoinedMessage;
  left: LeftMessage;
  peer_joined: PeerJoinedMessage;
  peer_left: PeerLeftMessage;
  presence: PresenceEvent;
  pong: PongMessage;
  /** The relay dropped `dropped` messages for this peer because its queue was full. */
  overflow: { dropped: number };
  /** After every reconnect, once welcomed: whether the session was resumed and what it missed. */
  resumed: ResumedEvent;
  /**
   * An error not tied to a pending request (binary frames, rate limiting, a failed re-join,
   * auth_failed: a key-auth challenge the client cannot answer).
   * A rate_limited error also rejects every request still waiting for its answer
   * with code rate_limited, at once.
   */
  error: RelayError;
}

export interface SendOptions {
  /** Ask for an ack and resolve on it (default true); with false, resolve once sent. */
  ack?: boolean;
  /** ms; overrides ackTimeout. */
  timeout?: number;
}

export class RelayClient {
  constructor(url: string | URL, options?: RelayClientOptions);
  readonly state: State;
  /** This connection's peer id, once welcomed. */
  readonly peer: string | null;
  /** The last welcome message. */
  readonly welcome: Welcome | null;
  /**
   * Whether the current connection negotiated permessage-deflate (RFC 7692).
   * Browsers offer it by themselves; a relay with WSRELAY_COMPRESSION=true
   * accepts it. Messages are compressed and inflated by the WebSocket itself.
   */
  readonly compressed: boolean;
  /** Reconnect attempts since the last welcome. */
  readonly attempt: number;
  /** Data messages received in this session (every message after the welcome). */
  readonly received: number;

  on<K extends keyof RelayEvents>(type: K, fn: (ev: RelayEvents[K]) => void): () => void;
  off<K extends keyof RelayEvents>(type: K, fn: (ev: RelayEvents[K]) => void): void;

  /** Opens the connection; resolves with the first welcome. Rejects if the client is closed (or replaced) first. */
  connect(): Promise<Welcome>;
  /** Closes and stops reconnecting. */
  close(code?: number, reason?: string): void;

  /**
   * Joins room now and after every reconnect; resolves with the other members.
   * Called while reconnecting, it resolves on the new connection (at once
   * when the session resumed and is still in room).
   * token: a room token from the application's backend (a JWT whose sub is
   * this peer's base id and whose room claim is room); the join then rests on
   * it alone, and it is sent again on re-joins after a reconnect. A refused
   * join rejects with a RelayError of code 'forbidden'.
   */
  join(room: string, options?: { timeout?: number; token?: string }): Promise<string[]>;
  /** Leaves room; it is no longer joined after reconnects. */
  leave(room: string, options?: { timeout?: number }): Promise<void>;
  /** Rooms joined or to be joined again after a reconnect. */
  rooms(): string[];
  /** The other members of room as last reported. */
  peersIn(room: string): string[];

  /**
   * Sends to the other members of room; resolves on the relay's ack. Rejects with
   * the relay's error code, or with rate_limited as soon as the relay reports that
   * its rate limit dropped messages while this one was unanswered (the relay names
   * no request in that error: a message it still delivers gets an ack that arrives
   * too late and is ignored, as after ack_timeout). direct and broadcast likewise.
   */
  publish(room: string, data: JSONValue, options?: SendOptions): Promise<void>;
  direct(to: string, data: JSONValue, options?: SendOptions): Promise<void>;
  broadcast(data: JSONValue, options?: SendOptions): Promise<void>;
  /** Sends a binary frame; not acknowledged. Throws RelayError not_connected. */
  sendBinary(frame: OutgoingFrame | Uint8Array): void;
  /** Resolves with the relay's time (Unix ms). */
  ping(options?: { timeout?: number }): Promise<number>;
}
