package console

import (
	"context"
	"sync"

	"github.com/sagabox/sagabox/api"
)

type instanceHealth struct {
	URL string
	OK  bool
}

// health checks every instance of a service.
func health(ctx context.Context, c api.Client) []instanceHealth {
	ok := c.Health(ctx)
	out := make([]instanceHealth, len(c.URLs))
	for i, u := range c.URLs {
		out[i] = instanceHealth{URL: u, OK: ok[i]}
	}
	return out
}

// stepOwners knows which participant serves which step, as each says (GET
// /steps): asked again for a step it does not know yet, so a participant
// added or restarted later is found.
type stepOwners struct {
	mu     sync.Mutex
	owners map[string]int // step → index into the participants
}

// owner returns the participant serving step, if any answers for it.
func (s *Server) owner(ctx context.Context, step string) (api.Client, bool) {
	s.steps.mu.Lock()
	defer s.steps.mu.Unlock()
	if i, ok := s.steps.owners[step]; ok {
		return s.participants[i], true
	}
	for i, p := range s.participants {
		infos, err := p.Steps(ctx)
		if err != nil {
			continue
		}
		for _, info := range infos {
			s.steps.owners[info.Name] = i
		}
	}
	i, ok := s.steps.owners[step]
	if !ok {
		return api.Client{}, false
	}
	return s.participants[i], true
}
