package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/pkg/relay"
)

// relayBench measures, on the system's Postgres and broker, how long rows
// inserted into an outbox in one transaction take to be acknowledged by
// Kafka: through sagabox's relay (pkg/relay, as `sagabox relay` runs it),
// then through Watermill's SQL forwarder (watermill-sql's Postgres
// subscriber feeding watermill-kafka's publisher), each into a topic of its
// own. Both run before the insert commits; the clock starts at the commit
// and stops when the topic's end offsets add up to rows.
func relayBench(ctx context.Context, s *system, rows int) ([]relayResult, error) {
	admin, err := s.db(ctx, "postgres", 2)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	for _, db := range []string{"relaybench", "watermillbench"} {
		if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`); err != nil {
			return nil, err
		}
		if _, err := admin.Exec(ctx, `CREATE DATABASE `+db); err != nil {
			return nil, err
		}
	}
	// A low metadata age: the topics appear only once the relays create
	// them, and the default (5s) would hold the measurement back.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)

	ours, err := benchRelay(ctx, s, adm, rows)
	if err != nil {
		return nil, fmt.Errorf("sagabox relay: %w", err)
	}
	theirs, err := benchWatermill(ctx, s, adm, rows)
	if err != nil {
		return nil, fmt.Errorf("watermill forwarder: %w", err)
	}
	return []relayResult{{name: "sagabox relay", seconds: ours.Seconds()}, {name: "Watermill SQL forwarder", seconds: theirs.Seconds()}}, nil
}

// waitEnd waits until topic's end offsets add up to n.
func waitEnd(ctx context.Context, adm *kadm.Client, topic string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			var sum int64
			ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
			if sum >= int64(n) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not reach %d records in %s (%v)", topic, n, timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the broker, not synchronising
	}
}

func benchRelay(ctx context.Context, s *system, adm *kadm.Client, rows int) (time.Duration, error) {
	pool, err := s.db(ctx, "relaybench", 4)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE outboxevent (id uuid PRIMARY KEY, aggregatetype text NOT NULL,
		aggregateid text NOT NULL, type text NOT NULL, payload jsonb NOT NULL, traceparent text, tracestate text,
		created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return 0, err
	}
	pw, err := s.password()
	if err != nil {
		return 0, err
	}
	c, err := relay.ParseConnector("relaybench", map[string]string{
		"connector.class":   "io.debezium.connector.postgresql.PostgresConnector",
		"database.hostname": "127.0.0.1", "database.port": fmt.Sprint(s.pgPort), "database.user": "postgres",
		"database.password": pw,
		"database.dbname":   "relaybench", "topic.prefix": "relaybench", "plugin.name": "pgoutput",
		"slot.name": "relaybench", "publication.name": "relaybench", "table.include.list": "public.outboxevent",
		"key.converter": "org.apache.kafka.connect.storage.StringConverter", "value.converter": "org.apache.kafka.connect.storage.StringConverter",
		"transforms": "outbox", "transforms.outbox.type": relay.TransformEventRouter,
		"transforms.outbox.route.topic.replacement":           "${routedByValue}.events",
		"transforms.outbox.table.fields.additional.placement": "type:header:eventType,traceparent:header:traceparent,tracestate:header:tracestate",
	})
	if err != nil {
		return 0, err
	}
	sup, err := relay.NewSupervisor(relay.SupervisorConfig{Connectors: []relay.Connector{c}, Brokers: s.brokers,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return 0, err
	}
	defer sup.Close()
	if err := sup.Setup(ctx); err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = sup.Run(rctx) }()
	took, err := insertAndWait(ctx, pool, adm, "relaybench.events", rows, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, traceparent)
			SELECT gen_random_uuid(), 'relaybench', 'key-' || (g % 1000), 'REQUEST',
				jsonb_build_object('order-id', g, 'customer-id', 100001, 'payment-due', 4999, 'type', 'REQUEST'),
				'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
			FROM generate_series(1, $1) g`, rows)
		return err
	})
	return took, err
}

func insertAndWait(ctx context.Context, pool *pgxpool.Pool, adm *kadm.Client, topic string, rows int, insert func(pgx.Tx) error) (time.Duration, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if err := insert(tx); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := waitEnd(ctx, adm, topic, rows, 10*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func benchWatermill(ctx context.Context, s *system, adm *kadm.Client, rows int) (time.Duration, error) {
	const forwarderTopic, topic = "forwarder", "watermillbench.events"
	if _, err := adm.CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		return 0, err
	}
	pool, err := s.db(ctx, "watermillbench", 4)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	logger := watermill.NopLogger{}
	schema := wsql.DefaultPostgreSQLSchema{}
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{
		SchemaAdapter: schema, OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{}, InitializeSchema: true,
		PollInterval: 10 * time.Millisecond, // its default is 1s: keep the comparison about throughput
	}, logger)
	if err != nil {
		return 0, err
	}
	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: s.brokers, Marshaler: wkafka.DefaultMarshaler{}}, logger)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	fwd, err := forwarder.NewForwarder(sub, pub, logger, forwarder.Config{ForwarderTopic: forwarderTopic})
	if err != nil {
		return 0, err
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = fwd.Run(fctx) }()
	defer fwd.Close()
	select {
	case <-fwd.Running():
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("forwarder did not start")
	}
	return insertAndWait(ctx, pool, adm, topic, rows, func(tx pgx.Tx) error {
		sqlPub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: schema}, logger)
		if err != nil {
			return err
		}
		fpub := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: forwarderTopic})
		msgs := make([]*message.Message, 0, 500)
		for i := range rows {
			payload := fmt.Sprintf(`{"order-id":%d,"customer-id":100001,"payment-due":4999,"type":"REQUEST"}`, i)
			m := message.NewMessage(watermill.NewUUID(), []byte(payload))
			m.Metadata.Set("eventType", "REQUEST")
			msgs = append(msgs, m)
			if len(msgs) == cap(msgs) || i == rows-1 {
				if err := fpub.Publish(topic, msgs...); err != nil {
					return err
				}
				msgs = msgs[:0]
			}
		}
		return nil
	})
}
