package loop

// Views of the server's state for the external tests.

// OpenConns returns the number of open WebSocket connections.
func (s *Server) OpenConns() int64 { return s.conns.Load() }

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// HighWater returns the in-flight byte limit of every connection.
func (s *Server) HighWater() int64 { return s.env.HighWater }
