package relay_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/relay"
)

// The contract: for each option the connector files can use, the record
// Debezium 3.5.2 (quay.io/debezium/connect:3.5.2.Final, Kafka Connect 4.x)
// publishes, derived from its source and written beside each expectation,
// checked through real PostgreSQL, the relay and a real Kafka-protocol
// broker, read back with a Kafka client: topic, partition (when the option
// sets it), key, value bytes, headers and timestamp.
//
// Sources, cited by name below:
//   EventRouterDelegate.apply, getEventTimestampMs, EventRouterConfigDefinition
//     (debezium-connect-plugins, io.debezium.transforms.outbox)
//   ExtractNewRecordState.doApply, DefaultDeleteHandlingStrategy
//     (debezium-connect-plugins, io.debezium.transforms)
//   EventDispatcher.getExtendedHeaders, DebeziumHeaderProducer.contextHeaders
//     (debezium-connector-common): connectorLogicalName = topic.prefix,
//     taskId "0", connectorName "postgresql", a random runId per task start
//   PostgresValueConverter, JdbcValueConverters, TemporalPrecisionMode,
//     ZonedTimestamp, VariableScaleDecimal (debezium-connector-postgres/-common)
//   HeartbeatImpl (debezium-connector-common)
//   Kafka Connect: RegexRouter.apply (Matcher.matches, then replaceFirst),
//     StringConverter.fromConnectData (value.toString()), Struct.toString,
//     JsonConverter.convertToJson (schemas.enable=false, decimal.format
//     BASE64; a null with a schema is the JSON null), SimpleHeaderConverter
//     .fromConnectHeader (Values.convertToString), AbstractWorkerSourceTask
//     .convertTransformedRecord (record timestamp: null lets the producer
//     stamp it), Selectors/Predicates.includes (case-insensitive, whole name)

type contractCase struct {
	name string
	// file is the base connector file: a project file name, or "" for a
	// minimal ExtractNewRecordState connector on table public.t.
	file string
	opts map[string]string // on top of the file; "" deletes a key
	ddl  []string          // run before the relay starts
	// before runs before the relay first starts (the snapshot reads it);
	// sql runs once it streams.
	before, sql []string
	want        []contractRecord
}

// contractRecord is a consumed record. A zero Time stands for "stamped
// during the run" (the processing time, EventRouter's default, or the
// producer's send time when the record has none). Partition -1: any.
type contractRecord struct {
	Topic     string
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []relay.Header
	Time      time.Time
}

const (
	eventID  = "8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2"
	eventID2 = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
	tp       = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

func b(s string) []byte { return []byte(s) }

func h(k string, v any) relay.Header {
	if v == nil {
		return relay.Header{Key: k}
	}
	return relay.Header{Key: k, Value: []byte(v.(string))}
}

// ctx4 are DebeziumHeaderProducer's headers; the run id is checked apart.
func ctx4(prefix string, hs ...relay.Header) []relay.Header {
	return append([]relay.Header{
		h("__debezium.context.connectorLogicalName", prefix), h("__debezium.context.taskId", "0"),
		h("__debezium.context.connectorName", "postgresql"), h("__debezium.context.runId", "<run>"),
	}, hs...)
}

// insertOutbox inserts an outbox row with the given payload (SQL literal).
func insertOutbox(id, aggType, payload string) string {
	return `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, traceparent, tracestate)
		VALUES ('` + id + `', '` + aggType + `', 'saga-1', 'REQUEST', ` + payload + `, '` + tp + `', 'vendor=x , other=y')`
}

func TestContract(t *testing.T) {
	t.Parallel()
	for _, tc := range contractCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runContract(t, tc)
		})
	}
}

func runContract(t *testing.T, tc contractCase) {
	f := newFixture(t)
	ctx := context.Background()
	for _, q := range tc.ddl {
		if _, err := f.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range tc.before {
		if _, err := f.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c := contractConnector(t, tc)
	var topics []string
	for _, w := range tc.want {
		if !slices.Contains(topics, w.Topic) {
			topics = append(topics, w.Topic)
		}
	}
	col := f.consume(t, topics...)
	began := time.Now().Add(-time.Second)
	start(t, f.newRelay(t, c, f.slot(t)))
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.logs.lines("relay streaming")) > 0 }, "relay streaming")
	for _, q := range tc.sql {
		if _, err := f.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return len(col.records()) >= len(tc.want) }, "%d records", len(tc.want))
	ended := time.Now().Add(time.Second)
	var got []contractRecord
	runIDs := map[string]bool{}
	for _, r := range col.records() {
		cr := contractRecord{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Time: r.Timestamp}
		for _, hd := range r.Headers {
			if hd.Key == "__debezium.context.runId" {
				if _, err := uuid.Parse(string(hd.Value)); err != nil {
					t.Errorf("runId header %q is not a UUID", hd.Value)
				}
				runIDs[string(hd.Value)] = true
				hd.Value = b("<run>")
			}
			cr.Headers = append(cr.Headers, relay.Header{Key: hd.Key, Value: hd.Value})
		}
		got = append(got, cr)
	}
	if len(runIDs) > 1 {
		t.Errorf("records of one run carry %d run ids", len(runIDs))
	}
	// Kafka orders records within a partition only: compare topic by topic,
	// in the order the expectations name them.
	slices.SortStableFunc(got, func(a, b contractRecord) int {
		return slices.Index(topics, a.Topic) - slices.Index(topics, b.Topic)
	})
	want := slices.Clone(tc.want)
	for i := range want {
		if i >= len(got) {
			break
		}
		if want[i].Partition < 0 {
			want[i].Partition = got[i].Partition
		}
		if want[i].Time.IsZero() {
			if got[i].Time.Before(began) || got[i].Time.After(ended) {
				t.Errorf("record %d: timestamp %s outside the run [%s, %s]", i, got[i].Time, began, ended)
			}
			want[i].Time = got[i].Time
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// contractConnector writes tc's connector file and loads it.
func contractConnector(t *testing.T, tc contractCase) relay.Connector {
	t.Helper()
	cfg := map[string]string{
		"connector.class": "io.debezium.connector.postgresql.PostgresConnector", "database.hostname": "postgres",
		"database.user": "u", "database.dbname": "d", "topic.prefix": "p", "plugin.name": "pgoutput",
		"table.include.list": "public.t", "publication.autocreate.mode": "filtered",
		"key.converter": relay.JSONConverter, "key.converter.schemas.enable": "false",
		"value.converter": relay.JSONConverter, "value.converter.schemas.enable": "false",
		"transforms": "unwrap", "transforms.unwrap.type": relay.TransformExtractNewRecordState,
	}
	if tc.file != "" {
		raw, err := os.ReadFile(filepath.Join(connectorsDir, tc.file+".json"))
		if err != nil {
			t.Fatal(err)
		}
		cfg = map[string]string{}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range tc.opts {
		if v == "" {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	c, err := relay.ParseConnector(strings.ReplaceAll(tc.name, " ", "-"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
