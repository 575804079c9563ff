package teleportsrc

// PendingReads is how many pages the search has asked ahead of its reader.
func PendingReads(s *Search) int { return len(s.ahead.pending) }
