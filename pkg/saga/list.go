package saga

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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
	Step   string // a step a running saga waits for; "" any
	// OlderThan keeps sagas created more than this long ago; 0 any.
	OlderThan time.Duration
	// NewerThan keeps sagas created at most this long ago; 0 any.
	NewerThan time.Duration
	// PayloadIDs keeps sagas whose payload has these top-level fields with
	// these integer values, e.g. {"customer-id": 456}; nil any. A service
	// indexes the fields it filters on (the order service's migration).
	PayloadIDs map[string]int64
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
// time, then id), and whether more follow. The query has only the
// conditions f asks for, so that each is served by an index: the
// creation time's, the type's, the status' (partial: running or ended),
// the deadline's, and the payload fields' that a service declares.
func List(ctx context.Context, q Querier, f Filter) ([]State, bool, error) {
	limit := f.Limit
	if limit == 0 {
		limit = 50
	}
	if limit < 0 || limit > MaxPage {
		return nil, false, fmt.Errorf("list sagas: page size %d not in 1..%d", limit, MaxPage)
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Type != "" {
		where = append(where, "type = "+arg(f.Type))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.Step != "" {
		// Running sagas only (the running sagas' index): a step a saga
		// waits for.
		p := arg(f.Step)
		where = append(where, "status IN ('STARTED', 'ABORTING') AND (current_step = "+p+" OR waits ? "+p+")")
	}
	if f.OlderThan > 0 {
		where = append(where, "created_at < now() - make_interval(secs => "+arg(f.OlderThan.Seconds())+")")
	}
	if f.NewerThan > 0 {
		where = append(where, "created_at >= now() - make_interval(secs => "+arg(f.NewerThan.Seconds())+")")
	}
	if f.Stuck {
		stuck := "deadline <= now()"
		if f.StuckAfter > 0 {
			stuck = "(" + stuck + " OR status = 'ABORTING' AND status_since < now() - make_interval(secs => " +
				arg(f.StuckAfter.Seconds()) + "))"
		}
		where = append(where, stuck)
	}
	for _, field := range slices.Sorted(maps.Keys(f.PayloadIDs)) {
		where = append(where, "(payload->>"+arg(field)+") = "+arg(strconv.FormatInt(f.PayloadIDs[field], 10)))
	}
	if f.After != nil {
		where = append(where, "(created_at, id) < ("+arg(f.After.CreatedAt)+", "+arg(f.After.ID)+")")
	}
	sql := `SELECT ` + stateColumns + ` FROM sagastate`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY created_at DESC, id DESC LIMIT " + arg(limit+1)
	rows, err := q.Query(ctx, sql, args...)
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
