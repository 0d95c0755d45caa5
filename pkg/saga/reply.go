package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/consumer"
)

// ReplyTopics are the topics of the replies of every step of every saga
// type the orchestrator runs ("<step>.response"), to consume, sorted.
func (o *Orchestrator) ReplyTopics() []string {
	topics := make([]string, 0, len(o.replySteps))
	for t := range o.replySteps {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	return topics
}

// ReplyTopics are the topics of the replies of every step of defs, sorted:
// what an orchestrator of defs consumes, known before it is built.
func ReplyTopics(defs ...Definition) []string {
	var topics []string
	for _, d := range defs {
		for _, st := range d.Steps {
			topics = append(topics, st.ReplyTopic())
		}
	}
	slices.Sort(topics)
	return slices.Compact(topics)
}

// OnReply applies a participant's reply within tx, the consumer.Handler of
// ReplyTopics: the step from the topic, the saga from the key, the outcome
// from the body (Handle), the message recorded as the transition's cause.
// What it returns tells the consumer what to do:
//
//   - a reply ahead of the saga as tx sees it — no saga yet, or a step that
//     does not show the message this reply answers (ErrEarlyReply) — is
//     consumer.Early: the transaction that sent that message committed but
//     is not visible here yet; try again shortly;
//   - a lost optimistic lock (ErrStale) is transient (IsRetryable);
//   - a reply of no known step, or one its step cannot read, or to a saga
//     of a definition version this orchestrator does not hold, is
//     consumer.Permanent: it is parked (replay it once a service with that
//     version runs);
//   - a late reply (duplicated, to a step already settled, after the saga
//     ended) changes nothing, is logged and committed.
func (o *Orchestrator) OnReply(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	step, ok := o.replySteps[m.Topic]
	if !ok {
		return consumer.Permanent(fmt.Errorf("not a reply topic of any step: %s", m.Topic))
	}
	sagaID, err := m.SagaID()
	if err != nil {
		return err
	}
	cause := Cause{EventID: m.ID, Topic: m.Topic, EventType: m.EventType}
	s, changed, err := o.Handle(ctx, tx, sagaID, step, m.Value, cause)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrEarlyReply):
		return consumer.Early(err)
	case errors.Is(err, ErrUnexpectedReply), errors.Is(err, ErrBadReply), errors.Is(err, ErrUnknownType),
		errors.Is(err, ErrUnknownVersion):
		return consumer.Permanent(err)
	case err != nil:
		return err
	}
	if !changed {
		o.log.WarnContext(ctx, "late reply ignored: its step no longer waits for it", "saga_id", sagaID, "saga_step", step,
			"event_id", m.ID, "event_type", m.EventType, "topic", m.Topic,
			"saga_status", s.Status, "step_status", s.StepStatus[step], "version", s.Version)
		return nil
	}
	// One INFO line per saga, when it ends; every step at DEBUG (a line per
	// message costs more CPU than the rest of its handling under load).
	level := slog.LevelDebug
	if s.Status.Done() {
		level = slog.LevelInfo
	}
	o.log.Log(ctx, level, "saga advanced", "saga_id", sagaID, "saga_type", s.Type, "saga_step", step, "event_id", m.ID,
		"saga_status", s.Status, "step_status", s.StepStatus[step], "version", s.Version)
	return nil
}
