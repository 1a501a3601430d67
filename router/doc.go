// Package router keeps the peers and rooms of one node and routes messages
// between them.
//
// Routing never writes to a socket and never blocks on a slow peer: a
// message is encoded once into a frame.Buf by the caller and handed to every
// recipient's queue (conn.Conn.Enqueue); the connections that need a flush
// are collected in a Batch that the caller flushes after routing everything it
// read, so a recipient of many messages gets one write for all of them.
//
// Peers and rooms live in sharded maps; a fan-out holds one shard's read lock
// while it enqueues, which takes each recipient's queue lock briefly and
// nothing else.
package router
