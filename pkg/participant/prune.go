package participant

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Prune removes, within tx, up to limit step records (barrier rows) of the
// participant's steps whose last message is older than retention, with
// what each step's Forget removes for them, and returns how many it
// removed. Once a record is gone, a message of its saga for its step
// would be applied as a first one: a REQUEST would run Do again. So the
// retention must outlast every way such a message can still arrive — the
// consumed-message journal's retention, which itself outlasts the topics'
// and the outboxes' (platform.Retention checks both).
func (p *Participant) Prune(ctx context.Context, tx pgx.Tx, retention time.Duration, limit int) (int, error) {
	const pick = `SELECT step, saga_id FROM participant_step
		WHERE updated_at < now() - make_interval(secs => $1) AND step = ANY($2)
		LIMIT $3
		FOR UPDATE SKIP LOCKED`
	names := make([]string, len(p.infos))
	for i, s := range p.infos {
		names[i] = s.Name
	}
	rows, err := tx.Query(ctx, pick, retention.Seconds(), names, limit)
	if err != nil {
		return 0, fmt.Errorf("prune step records: %w", err)
	}
	bySteps := map[string][]uuid.UUID{}
	n := 0
	var (
		step string
		id   uuid.UUID
	)
	if _, err := pgx.ForEachRow(rows, []any{&step, &id}, func() error {
		bySteps[step] = append(bySteps[step], id)
		n++
		return nil
	}); err != nil {
		return 0, fmt.Errorf("prune step records: %w", err)
	}
	for _, s := range p.steps {
		ids := bySteps[s.Info().Name]
		if len(ids) == 0 {
			continue
		}
		if err := s.forget(ctx, tx, ids); err != nil {
			return 0, fmt.Errorf("prune step records of %s: %w", s.Info().Name, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM participant_step WHERE step = $1 AND saga_id = ANY($2)`, s.Info().Name, ids); err != nil {
			return 0, fmt.Errorf("prune step records of %s: %w", s.Info().Name, err)
		}
	}
	return n, nil
}
