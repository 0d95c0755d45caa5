package consumer

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/pkg/outbox"
)

// processBatch applies recs, consecutive records of the worker's partition,
// in one transaction: each record's journal entry and effect, in order, and
// one commit for all. When anything goes wrong — a record that does not
// decode, a handler error of any kind, the commit — nothing of the batch
// stays, and its records are processed one by one (process), which retries,
// parks and logs each on its own. Each record's offset is marked for commit
// once it is handled. It returns false only when the worker was cancelled
// first.
func (w *worker) processBatch(recs []*kgo.Record) bool {
	if len(recs) > 1 && w.applyBatch(recs) == nil {
		w.c.handle(recs[len(recs)-1])
		return true
	}
	for _, r := range recs {
		if !w.process(r) {
			return false
		}
		w.c.handle(r)
	}
	return true
}

func (w *worker) applyBatch(recs []*kgo.Record) error {
	c := w.c
	msgs := make([]Message, len(recs))
	for i, r := range recs {
		m, err := decode(r, c.cfg.MaxRecordBytes)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	spans := make([]trace.Span, 0, len(recs))
	outcomes := make([]Outcome, len(recs))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	err := pgx.BeginFunc(w.ctx, c.cfg.Pool, func(tx pgx.Tx) error {
		first, err := outbox.MarkConsumedAll(w.ctx, tx, c.cfg.Group, ids)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			ctx, span := c.startSpan(w.ctx, recs[i], m)
			spans = append(spans, span)
			span.SetAttributes(attribute.Int("messaging.batch.message_count", len(recs)))
			if !first[m.ID] {
				span.SetAttributes(attribute.Bool("messaging.duplicate", true))
				outcomes[i] = RecordDuplicate
				continue
			}
			outcomes[i] = RecordApplied
			delete(first, m.ID) // a second copy in this batch is a duplicate
			if err := c.cfg.Handler(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for i, r := range recs {
			c.observe(r.Topic, outcomes[i])
		}
		return nil
	}
	if !errors.Is(err, context.Canceled) {
		for _, s := range spans {
			s.AddEvent("batch rolled back; records applied one by one", trace.WithAttributes(attribute.String("error", err.Error())))
		}
	}
	return err
}
