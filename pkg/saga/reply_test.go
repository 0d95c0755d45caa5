package saga_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
)

// An orchestrator of two saga types routes each reply by its topic to the
// step and by its key to the saga, whatever its type; the consumer is told
// what to do with each reply that does not fit; OnTransition runs in the
// transition's transaction, and its error undoes the transition.
func TestOnReplyRoutesRepliesOfSeveralSagaTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var seen []string
	failHook := false
	o, err := saga.New(saga.Config{
		Definitions: []saga.Definition{
			{Type: "two-step", Steps: []saga.Step{step("one"), step("two")}},
			{Type: "other", Steps: []saga.Step{step("three")}},
		},
		Logger: slog.New(slog.DiscardHandler),
		OnTransition: func(ctx context.Context, tx pgx.Tx, s saga.State) error {
			if failHook {
				return errors.New("hook failed")
			}
			seen = append(seen, s.Type+" "+string(s.Status))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	if got := o.ReplyTopics(); len(got) != 3 || got[0] != "one.response" || got[2] != "two.response" {
		t.Errorf("reply topics %v", got)
	}
	start := func(sagaType string) uuid.UUID {
		id := uuid.New()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := o.Start(ctx, tx, sagaType, id, []byte(`{}`), txNow(t, tx))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	onReply := func(topic, key, body string) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return o.OnReply(ctx, tx, consumer.Message{Topic: topic, Key: key, Value: []byte(body), ID: uuid.New(), EventType: "R"})
		})
	}
	two, other, fresh := start("two-step"), start("other"), start("two-step")
	if err := onReply("three.response", other.String(), `{"Status":"SUCCEEDED"}`); err != nil {
		t.Fatal(err)
	}
	if err := onReply("one.response", two.String(), `{"Status":"SUCCEEDED"}`); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uuid.UUID]saga.Status{two: saga.StatusStarted, other: saga.StatusSucceeded} {
		if s, err := saga.Load(ctx, pool, id); err != nil || s.Status != want {
			t.Errorf("saga %s: %s (%v), want %s", id, s.Status, err, want)
		}
	}
	if len(seen) != 2 || seen[0] != "other SUCCEEDED" || seen[1] != "two-step STARTED" {
		t.Errorf("OnTransition saw %v", seen)
	}

	for name, tc := range map[string]struct {
		topic, key, body string
		want             error // nil: applied or ignored
	}{
		"late: a step already settled":  {"one.response", two.String(), `{"Status":"SUCCEEDED"}`, nil},
		"late: after the saga ended":    {"three.response", other.String(), `{"Status":"FAILED"}`, nil},
		"early: a step not started yet": {"two.response", fresh.String(), `{"Status":"SUCCEEDED"}`, consumer.ErrEarly},
		"a step of another saga type":   {"three.response", two.String(), `{"Status":"SUCCEEDED"}`, consumer.ErrPermanent},
		"early: no such saga yet":       {"one.response", uuid.NewString(), `{"Status":"SUCCEEDED"}`, consumer.ErrEarly},
		"no step replies here":          {"nine.response", two.String(), `{"Status":"SUCCEEDED"}`, consumer.ErrPermanent},
		"a key that is not a saga id":   {"two.response", "order-1", `{"Status":"SUCCEEDED"}`, consumer.ErrPermanent},
		"a body it cannot read":         {"two.response", two.String(), `{"Status":`, consumer.ErrPermanent},
	} {
		before, _ := saga.Load(ctx, pool, two)
		err := onReply(tc.topic, tc.key, tc.body)
		if (tc.want == nil) != (err == nil) || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if after, _ := saga.Load(ctx, pool, two); after.Version != before.Version {
			t.Errorf("%s changed saga %s", name, two)
		}
	}

	failHook = true
	if err := onReply("two.response", two.String(), `{"Status":"SUCCEEDED"}`); err == nil {
		t.Error("a failing OnTransition did not fail the reply")
	}
	if s, _ := saga.Load(ctx, pool, two); s.Status != saga.StatusStarted {
		t.Errorf("the transition stayed though OnTransition failed: %s", s.Status)
	}
}
