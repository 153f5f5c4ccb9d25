package auth

import "time"

// LoginWaiters reports how many callers are waiting on the password check
// under way for name and password (0 when none is under way), so a test
// can tell when concurrent logins have all arrived.
func (s *Service) LoginWaiters(name, password string) int {
	key := loginKey(name, password)
	s.mu.Lock()
	defer s.mu.Unlock()
	if call, ok := s.inflight[key]; ok && call.name == name {
		return call.waiters
	}
	return 0
}

// SetClock replaces the service's clock.
func (s *Service) SetClock(now func() time.Time) { s.now = now }
