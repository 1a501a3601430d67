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
// Every error is a sentinel declared in errors.go, matched with errors.Is.
// The Reader reports each RFC 6455 violation as its own *CloseError value,
// which carries the close code and reason to send, so one value decides the
// reply.
package frame
