package loop

// logBadInput logs a client's bad input at debug level, at most a few times
// a second server-wide so that a hostile client cannot flood the log.
func (s *Server) logBadInput(msg string, w *wsConn, args ...any) {
	s.badInput.Do(func() {
		s.log.Debug(msg, append([]any{"peer", w.ID, "remote", w.ip}, args...)...)
	})
}
