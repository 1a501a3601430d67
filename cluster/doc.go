// Package cluster joins several wsrelay nodes into one relay through NATS
// (docs/protocol.md section 8; docs/cluster.md for operators).
//
// A Cluster is the router's Backplane. Each node keeps its own registry of
// local peers and rooms and a replicated view of the other nodes' peers and
// memberships, fed by their presence messages: a peer lookup, a room's
// remote members or the joined list never cost a NATS round trip.
//
// Subjects, under a configurable prefix (default "wsrelay"):
//
//	<prefix>.presence     presence deltas, snapshots and heartbeats of every node
//	<prefix>.node.<id>    a node's inbox: direct frames for its peers, snapshot requests
//	<prefix>.room.<room>  room frames; a node subscribes only while it has local members
//	<prefix>.all          broadcast frames
//
// Frames cross NATS as the body the sending node built once (from stamped)
// behind a routing header of a few bytes (wire.go); the receiving node copies
// that body into one frame.Buf shared by all its local recipients, without
// parsing or re-encoding it.
//
// Every node publishes a heartbeat each Config.Heartbeat (1 s); a node not
// heard from for Config.DeadAfter (3 s) is dropped, and its peers are
// reported as left. Presence messages are numbered: a gap (a message lost
// while NATS was unreachable, or dropped by a slow consumer) makes the
// receiver ask the sender for a snapshot, which replaces what it knew of
// that node. A node that (re)connects publishes its snapshot and asks the
// others for theirs.
//
// Each Cluster runs two goroutines, both stopped and waited for by Close:
// one delivers inbound messages in arrival order, one (control) makes every
// NATS call of presence, expires silent nodes and counts what nats.go
// dropped. No lock is held across a NATS call: presence changes, which the
// router reports under its room locks, are recorded in an outbox that the
// control goroutine carries out in order (outbox.go).
//
// Every loss is counted once in wsrelay_messages_dropped_total: a frame NATS
// did not take (cluster_send_failed; the sender gets no ack), a message
// nats.go dropped because this node fell behind (cluster_slow_consumer),
// and a message from another node that does not decode (cluster_malformed).
package cluster
