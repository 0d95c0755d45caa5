package participant_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/participant/participanttest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type hold struct {
	Amount int64 `json:"amount"`
}

// holds is the smallest participant: Do holds an amount for its saga in a
// table of its own, refusing amounts over 100; Undo lets it go.
func holds() participant.Step[hold, hold] {
	return participant.Step[hold, hold]{
		Contract: contract.Step[hold]{Name: "hold", ReplyType: "Held", Succeeded: "HELD", Failed: "REFUSED", Cancelled: "RELEASED"},
		Do: func(ctx context.Context, tx pgx.Tx, c participant.Call[hold]) (hold, bool, error) {
			if c.Request.Amount > 100 {
				return hold{}, false, nil
			}
			_, err := tx.Exec(ctx, `INSERT INTO held (saga_id, amount) VALUES ($1, $2)`, c.SagaID, c.Request.Amount)
			return c.Request, err == nil, err
		},
		Undo: func(ctx context.Context, tx pgx.Tx, c participant.Call[hold], h hold) error {
			_, err := tx.Exec(ctx, `DELETE FROM held WHERE saga_id = $1 AND amount = $2`, c.SagaID, h.Amount)
			return err
		},
	}
}

func database(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	db := testenv.Pool(t, url)
	if _, err := db.Exec(context.Background(), `CREATE TABLE held (saga_id uuid PRIMARY KEY, amount bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// The library against its own contract suite, with the smallest step.
func TestContractSuite(t *testing.T) {
	t.Parallel()
	schema := migrations.Schema{{Table: participant.MigrationsTable, FS: participant.Migrations()}, migrations.Service("payment")}
	participanttest.Run(t, participanttest.Subject[hold, hold]{
		Step:         holds(),
		Database:     func(t *testing.T) *pgxpool.Pool { return database(t, testenv.Database(t, schema)) },
		HeldDatabase: func(t *testing.T) *pgxpool.Pool { return database(t, testenv.HeldCommitDatabase(t, schema)) },
		Request:      func(*testing.T, *pgxpool.Pool, uuid.UUID) hold { return hold{Amount: 42} },
		Held: func(t *testing.T, db *pgxpool.Pool, saga uuid.UUID, _ hold) int64 {
			var n int64
			if err := db.QueryRow(context.Background(), `SELECT coalesce(sum(amount), 0) FROM held WHERE saga_id = $1`, saga).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
		Amount: func(h hold) int64 { return h.Amount },
	})
}

func FuzzDecode(f *testing.F) { participanttest.FuzzDecode(f, holds()) }

func TestNewRefusesStepsItCannotServe(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	nameless := holds()
	nameless.Contract.Name = ""
	for name, steps := range map[string][]participant.Handler{
		"no step": nil, "a step twice": {holds(), holds()}, "a step without a name": {nameless},
	} {
		if _, err := participant.New(log, steps...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p, err := participant.New(log, holds())
	if err != nil || fmt.Sprint(p.Topics()) != "[hold.request]" {
		t.Errorf("topics %v, %v", p.Topics(), err)
	}
}
