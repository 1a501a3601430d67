// Package frame encodes and decodes everything wsrelay puts on the wire:
// WebSocket framing (RFC 6455, server side), the JSON envelope of text
// messages, the typed binary header of binary messages, and the pooled,
// reference-counted buffers that carry one encoded frame to many recipients.
//
// frame knows nothing about sockets, peers or rooms. Its scanners never
// allocate and never copy payloads: they return sub-slices of the input,
// valid as long as the input is.
package frame
