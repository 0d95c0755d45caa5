package testenv

import (
	"strings"
	"sync"
)

// Buffer collects output written concurrently — logs of several
// goroutines or child processes — for a test to read while it grows.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count returns how many times substr was written so far.
func (s *Buffer) Count(substr string) int {
	return strings.Count(s.String(), substr)
}
