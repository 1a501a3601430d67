// Package frame encodes and decodes everything wsrelay puts on the wire:
// WebSocket framing (RFC 6455, server side), the JSON envelope of text
// messages, the typed binary header of binary messages, and the pooled,
// reference-counted buffers that carry one encoded frame to many recipients.
//
// frame knows nothing about sockets, peers or rooms. The envelope scanner
// and the binary header parser never allocate and never copy: they return
// sub-slices of their input, valid as long as the input is. The WebSocket
// Reader hands complete frames out of the caller's buffer without copying;
// only frames split across reads and fragmented messages are assembled in a
// pooled buffer, released as soon as the message was delivered.
//
// permessage-deflate (RFC 7692) is supported without context takeover in
// either direction, so no compression state outlives a message:
// NegotiateDeflate reads a client's offer, Buf.Deflated compresses an
// outgoing frame once for all of its recipients, and a Reader with Deflate
// set inflates compressed messages with a limit on the inflated size.
// Compressors and decompressors come from pools for one message at a time.
//
// Every error is a sentinel declared in errors.go, matched with errors.Is.
// The Reader reports each RFC 6455 violation as its own *CloseError value,
// which carries the close code and reason to send, so one value decides the
// reply.
package frame
