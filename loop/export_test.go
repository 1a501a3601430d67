package loop

import "fmt"

// Views of the server's state for the external tests.

// OpenConns returns the number of open WebSocket connections.
func (s *Server) OpenConns() int64 { return s.conns.Load() }

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// HighWater returns the in-flight byte limit of every connection.
func (s *Server) HighWater() int64 { return s.env.HighWater }

// ReadState describes how peer's connection is read (read.go): its reading
// role, whether its frame.Reader stopped, and the input it kept.
func (s *Server) ReadState(peer string) string {
	for _, w := range s.snapshot() {
		if w.ID == peer {
			return fmt.Sprintf("rd %d, reader stopped %v, held %d, done %v", w.rd.Load(), w.reader.Stopped(), w.reader.Held(), w.done)
		}
	}
	return "gone"
}
