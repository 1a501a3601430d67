// Package router keeps the peers and rooms of one node and routes messages
// between them.
//
// Routing never writes to a socket and never blocks on a slow peer: a
// message is encoded once into a frame.Buf by the caller and handed to every
// recipient's queue (conn.Conn.EnqueueFrom, naming the Batch's Sender, which
// a recipient that keeps up may hold back: flow control); the connections that need a flush
// are collected in a Batch that the caller flushes after routing everything it
// read, so a recipient of many messages gets one write for all of them.
//
// Peers and rooms live in sharded maps; a fan-out holds one shard's read lock
// while it enqueues, which takes each recipient's queue lock briefly and
// nothing else.
//
// # Locks
//
// The router's state is guarded by three kinds of lock, always taken in this
// order, and never more than one of each kind at a time:
//
//  1. a peer record's mutex (peer.mu): the rooms that peer is in. Join,
//     Leave and leaveAll (Remove, Register's replacement, Evict) hold it for
//     the whole change, so a peer's list and the rooms' member lists agree.
//  2. a room shard's lock (roomShard.mu): the rooms of that shard and their
//     members. Written by Join and removeMember, read by Publish, Members,
//     DeliverRoom and remoteNote. The Backplane's Joined, Left and
//     AppendMembers are called under it; they never wait for the network
//     (the cluster records presence and makes its NATS calls later, on its
//     own goroutine, with no lock held).
//  3. a connection's queue lock, inside conn.Conn (Enqueue), taken for each
//     recipient of a fan-out.
//
// A peer shard's lock (peerShard.mu, the registry by id) is taken alone, or
// followed only by queue locks (enqueueAll, for Broadcast and DeliverAll): it
// is released before a peer record's mutex is taken. No router lock is held
// while a socket is written (Batch.Flush runs after routing), nor while the
// Backplane's PeerUp, PeerDown, Direct, Publish or Broadcast run.
package router
