package relay_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sagabox/sagabox/pkg/relay"
)

// FuzzConnectorFile feeds arbitrary connector files to the relay's parser.
// A file it accepts is one the relay can run: one of the two transforms,
// the two converters, a port, a snapshot mode it implements; parsing it
// again gives the same connector; routing a row and a heartbeat with it
// does not panic.
func FuzzConnectorFile(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(connectorsDir, "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(connectorJSON(nil))
	for _, tc := range badConnectorOptions {
		f.Add(connectorJSON(tc.opts))
	}
	f.Add([]byte(`{"name":"x","config":` + string(connectorJSON(nil)) + `}`))
	f.Add([]byte(`{"database.port":5432,"tombstones.on.delete":false}`))
	f.Add([]byte(`{"database.port":[1]}`))
	f.Add([]byte(`not json`))
	ignore := cmpopts.IgnoreUnexported(relay.Connector{}, relay.EventRouter{}, relay.TableFilter{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := relay.ParseConnectorFile("fuzz", raw)
		if err != nil {
			return
		}
		switch {
		case c.Name != "fuzz",
			c.Transform != relay.TransformEventRouter && c.Transform != relay.TransformExtractNewRecordState,
			c.Key.Class != relay.StringConverter && c.Key.Class != relay.JSONConverter,
			c.Value.Class != relay.StringConverter && c.Value.Class != relay.JSONConverter,
			c.Port <= 0 || c.Port > 65535,
			c.SnapshotMode != relay.SnapshotInitial && c.SnapshotMode != relay.SnapshotAlways && c.SnapshotMode != relay.SnapshotNoData,
			c.Host == "" || c.User == "" || c.DBName == "" || c.TopicPrefix == "" || c.SlotName == "" || c.PublicationName == "":
			t.Fatalf("accepted a connector the relay cannot run: %+v", c)
		}
		again, err := relay.ParseConnectorFile("fuzz", raw)
		if err != nil || !cmp.Equal(c, again, ignore) {
			t.Fatalf("parsing the same file again: %v %s", err, cmp.Diff(c, again, ignore))
		}
		c.Tables.Match("public", "outboxevent")
		_, _ = c.Route(insert(outboxTable, outboxRow()))
		_, _ = c.Heartbeat(at)
	})
}

// javaLineTerminators are what java.util.regex's "." does not match.
const javaLineTerminators = "\n\r\u0085\u2028\u2029"

// FuzzRouteOutboxRow feeds arbitrary outbox rows, inserted, read by a
// snapshot, updated or deleted, to the project's three outbox connectors,
// and checks the record against what Debezium's EventRouter publishes:
// deletes are ignored and updates refused (warn); an insert becomes one
// record on "<aggregatetype>.request" (or .response) — on the
// aggregatetype itself when Java's "." cannot match all of it — keyed by
// aggregateid, with the payload as its value and the id, type and trace
// columns as headers, byte for byte. A row whose route column is NULL is
// an error; any other row routes.
func FuzzRouteOutboxRow(f *testing.F) {
	row := outboxRow()
	f.Add(byte(relay.OpCreate), *row["id"], *row["aggregatetype"], *row["aggregateid"], *row["type"], *row["payload"], *row["traceparent"], "", byte(1<<6))
	f.Add(byte(relay.OpRead), "8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2", "payment", "181fbb66-2e7b-4a4b-9a0e-5d0c4f0e2a11", "CANCEL",
		`{"order-id":1,"type":"CANCEL"}`, "", "", byte(0xff))
	f.Add(byte(relay.OpCreate), "x", "", "", "", " ", "", "", byte(0))
	f.Add(byte(relay.OpUpdate), "x", "a", "b", "c", "{}", "", "", byte(0))
	f.Add(byte(relay.OpDelete), "x", "a", "b", "c", "{}", "", "", byte(0))
	f.Add(byte(relay.OpCreate), "x", "a.b", "k", "t", "{}", "tp", "ts", byte(0))
	var connectors []relay.Connector
	suffix := map[string]string{}
	for name, s := range map[string]string{"order-outbox": ".request", "customer-outbox": ".response", "payment-outbox": ".response"} {
		c, err := relay.LoadConnector(filepath.Join(connectorsDir, name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		connectors = append(connectors, c)
		suffix[c.Name] = s
	}
	f.Fuzz(func(t *testing.T, op byte, id, aggType, aggID, typ, payload, traceparent, tracestate string, nulls byte) {
		values := []string{id, aggType, aggID, typ, payload, traceparent, tracestate}
		cols := []string{"id", "aggregatetype", "aggregateid", "type", "payload", "traceparent", "tracestate"}
		r := relay.Row{"created_at": str("2024-05-01 12:00:00.123456+00")}
		for i, v := range values {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return // no PostgreSQL text value
			}
			if nulls&(1<<i) == 0 {
				r[cols[i]] = str(v)
			} else {
				r[cols[i]] = nil
			}
		}
		ch := relay.Change{Table: outboxTable, Op: relay.Op(op), After: r, At: at, RunID: "run-1"}
		switch ch.Op {
		case relay.OpCreate, relay.OpRead, relay.OpUpdate:
		case relay.OpDelete:
			ch.Before, ch.After = r, nil
		default:
			return
		}
		for _, c := range connectors {
			recs, err := c.Route(ch)
			switch {
			case ch.Op == relay.OpDelete:
				if err != nil || recs != nil {
					t.Fatalf("%s: delete routed to %v, %v; want nothing", c.Name, recs, err)
				}
				continue
			case ch.Op == relay.OpUpdate:
				var u *relay.UnexpectedUpdateError
				if !errors.As(err, &u) || u.Fatal || recs != nil {
					t.Fatalf("%s: update routed to %v, %v; want a warning", c.Name, recs, err)
				}
				continue
			case r["aggregatetype"] == nil:
				if err == nil {
					t.Fatalf("%s: a NULL aggregatetype routed to %v", c.Name, recs)
				}
				continue
			case err != nil:
				t.Fatalf("%s: row %v: %v", c.Name, values, err)
			}
			topic := aggType
			if !strings.ContainsAny(aggType, javaLineTerminators) {
				topic += suffix[c.Name]
			}
			bytesOf := func(col string) []byte {
				if r[col] == nil {
					return nil
				}
				return []byte(*r[col])
			}
			want := []relay.Record{{
				Topic: topic, Partition: -1, Key: bytesOf("aggregateid"), Value: bytesOf("payload"), Timestamp: at,
				Headers: headers(c.TopicPrefix,
					relay.Header{Key: "id", Value: bytesOf("id")},
					relay.Header{Key: "eventType", Value: bytesOf("type")},
					relay.Header{Key: "traceparent", Value: bytesOf("traceparent")},
					relay.Header{Key: "tracestate", Value: bytesOf("tracestate")},
				),
			}}
			if diff := cmp.Diff(want, recs); diff != "" {
				t.Fatalf("%s: row %q (nulls %08b) (-want +got):\n%s", c.Name, values, nulls, diff)
			}
		}
	})
}
