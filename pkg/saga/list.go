package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MaxPage bounds the page size of List.
const MaxPage = 500

// Filter selects sagas for List. The zero value selects every saga, first
// page of 50.
type Filter struct {
	Type   string // saga type; "" any
	Status Status // "" any
	Step   string // current step; "" any
	// OlderThan keeps sagas created more than this long ago; 0 any.
	OlderThan time.Duration
	// NewerThan keeps sagas created at most this long ago; 0 any.
	NewerThan time.Duration
	// Payload keeps sagas whose payload contains this JSON document
	// (jsonb @>), e.g. {"customer-id": 456}; nil any.
	Payload json.RawMessage
	// Stuck keeps sagas past their deadline, or ABORTING for longer than
	// StuckAfter (when StuckAfter > 0).
	Stuck      bool
	StuckAfter time.Duration
	// After continues a listing: only sagas after this one in List's order.
	After *Cursor
	// Limit is the page size, 1..MaxPage; 0 means 50.
	Limit int
}

// Cursor is a position in List's order (newest first): the last saga of a
// page.
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// CursorOf returns the position of s, to continue a listing after it.
func CursorOf(s State) Cursor { return Cursor{CreatedAt: s.CreatedAt, ID: s.ID} }

// List returns one page of the sagas f selects, newest first (by creation
// time, then id), and whether more follow.
func List(ctx context.Context, q Querier, f Filter) ([]State, bool, error) {
	limit := f.Limit
	if limit == 0 {
		limit = 50
	}
	if limit < 0 || limit > MaxPage {
		return nil, false, fmt.Errorf("list sagas: page size %d not in 1..%d", limit, MaxPage)
	}
	const sql = `SELECT ` + stateColumns + ` FROM sagastate
		WHERE ($1 = '' OR type = $1)
		  AND ($2 = '' OR status = $2)
		  AND ($3 = '' OR current_step = $3 OR waits ? $3)
		  AND ($4::float8 = 0 OR created_at < now() - make_interval(secs => $4))
		  AND (NOT $5 OR deadline <= now()
		       OR ($6::float8 > 0 AND status = 'ABORTING' AND status_since < now() - make_interval(secs => $6)))
		  AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8))
		  AND ($10::float8 = 0 OR created_at >= now() - make_interval(secs => $10))
		  AND ($11::jsonb IS NULL OR payload @> $11)
		ORDER BY created_at DESC, id DESC
		LIMIT $9`
	var (
		afterAt *time.Time
		afterID uuid.UUID
	)
	if f.After != nil {
		afterAt, afterID = &f.After.CreatedAt, f.After.ID
	}
	var payload *string
	if f.Payload != nil {
		p := string(f.Payload)
		payload = &p
	}
	rows, err := q.Query(ctx, sql, f.Type, string(f.Status), f.Step, f.OlderThan.Seconds(),
		f.Stuck, f.StuckAfter.Seconds(), afterAt, afterID, limit+1, f.NewerThan.Seconds(), payload)
	if err != nil {
		return nil, false, fmt.Errorf("list sagas: %w", err)
	}
	states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (State, error) { return scanState(r) })
	if err != nil {
		return nil, false, fmt.Errorf("list sagas: %w", err)
	}
	if len(states) > limit {
		return states[:limit], true, nil
	}
	return states, false, nil
}
