package relay_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sagabox/sagabox/pkg/relay"
)

// Pure routing tests: connector files in, records out, no I/O. The same
// expectations, checked through Postgres, the relay and the broker, are in
// contract_test.go with their Debezium sources.

const connectorsDir = "../../debezium/connectors"

func str(s string) *string { return &s }

// outboxTable is the outbox table as the migrations create it.
var outboxTable = relay.Table{Schema: "public", Name: "outboxevent", Key: []string{"id"}, Columns: []relay.Column{
	{Name: "id", Type: 2950, TypeMod: -1}, {Name: "aggregatetype", Type: 25, TypeMod: -1},
	{Name: "aggregateid", Type: 25, TypeMod: -1}, {Name: "type", Type: 25, TypeMod: -1},
	{Name: "payload", Type: 3802, TypeMod: -1}, {Name: "traceparent", Type: 25, TypeMod: -1},
	{Name: "tracestate", Type: 25, TypeMod: -1}, {Name: "created_at", Type: 1184, TypeMod: -1},
}}

var at = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func outboxRow() relay.Row {
	return relay.Row{
		"id":            str("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2"),
		"aggregatetype": str("credit-approval"),
		"aggregateid":   str("saga-1"),
		"type":          str("REQUEST"),
		"payload":       str(`{"amount": 10}`),
		"traceparent":   str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		"tracestate":    nil,
		"created_at":    str("2024-05-01 12:00:00.123456+00"),
	}
}

func insert(t relay.Table, row relay.Row) relay.Change {
	return relay.Change{Table: t, Op: relay.OpCreate, After: row, At: at, RunID: "run-1"}
}

// contextHeaders are Debezium's extended headers for topic.prefix and run-1.
func contextHeaders(prefix string) []relay.Header {
	return []relay.Header{
		{Key: "__debezium.context.connectorLogicalName", Value: []byte(prefix)},
		{Key: "__debezium.context.taskId", Value: []byte("0")},
		{Key: "__debezium.context.connectorName", Value: []byte("postgresql")},
		{Key: "__debezium.context.runId", Value: []byte("run-1")},
	}
}

func headers(prefix string, hs ...relay.Header) []relay.Header {
	return append(contextHeaders(prefix), hs...)
}

func TestRouteOutboxConnectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		connector, prefix, topic string
	}{
		{"order-outbox", "order", "credit-approval.request"},
		{"customer-outbox", "customer", "credit-approval.response"},
		{"payment-outbox", "payment", "credit-approval.response"},
	} {
		t.Run(tc.connector, func(t *testing.T) {
			t.Parallel()
			c, err := relay.LoadConnector(filepath.Join(connectorsDir, tc.connector+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Route(insert(outboxTable, outboxRow()))
			if err != nil {
				t.Fatal(err)
			}
			want := []relay.Record{{
				Topic: tc.topic, Partition: -1, Key: []byte("saga-1"), Value: []byte(`{"amount": 10}`), Timestamp: at,
				Headers: headers(tc.prefix,
					relay.Header{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")},
					relay.Header{Key: "eventType", Value: []byte("REQUEST")},
					relay.Header{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
					relay.Header{Key: "tracestate", Value: nil}, // NULL column: header present, null value
				),
			}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

// connectorWith writes a connector file with the given options on top of a
// minimal valid EventRouter configuration ("" deletes a key) and loads it.
func connectorWith(t *testing.T, extra map[string]string) (relay.Connector, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test-connector.json")
	if err := os.WriteFile(path, connectorJSON(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := relay.LoadConnector(path)
	return c, path, err
}

// connectorJSON is the connector file of connectorWith.
func connectorJSON(extra map[string]string) []byte {
	cfg := map[string]string{
		"database.hostname":        "db",
		"database.user":            "u",
		"database.dbname":          "d",
		"topic.prefix":             "p",
		"table.include.list":       "public.outboxevent",
		"key.converter":            relay.StringConverter,
		"value.converter":          relay.StringConverter,
		"extended.headers.enabled": "false",
		"transforms":               "outbox",
		"transforms.outbox.type":   "io.debezium.transforms.outbox.EventRouter",
	}
	for k, v := range extra {
		if v == "" {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	raw, _ := json.Marshal(cfg) // cannot fail: a map of strings
	return raw
}

func TestRouteEventRouterOptions(t *testing.T) {
	t.Parallel()
	id := relay.Header{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}
	rec := func(topic string, value string, hs ...relay.Header) relay.Record {
		r := relay.Record{Topic: topic, Partition: -1, Key: []byte("saga-1"), Value: []byte(value), Timestamp: at,
			Headers: append([]relay.Header{id}, hs...)}
		if value == "<nil>" {
			r.Value = nil
		}
		return r
	}
	for name, tc := range map[string]struct {
		opts  map[string]string
		table *relay.Table
		row   func(relay.Row)
		want  []relay.Record
	}{
		"defaults": {want: []relay.Record{rec("outbox.event.credit-approval", `{"amount": 10}`)}},
		"regex matching the whole value, named and numbered groups": {
			opts: map[string]string{
				"transforms.outbox.route.topic.regex":       `(?<kind>[a-z]+)-(?<rest>.*)`,
				"transforms.outbox.route.topic.replacement": `events.${rest}.$1`,
			},
			want: []relay.Record{rec("events.approval.credit", `{"amount": 10}`)},
		},
		"regex matching part of the value leaves it unchanged (RegexRouter uses matches())": {
			opts: map[string]string{
				"transforms.outbox.route.topic.regex":       `approval`,
				"transforms.outbox.route.topic.replacement": `check`,
			},
			want: []relay.Record{rec("credit-approval", `{"amount": 10}`)},
		},
		"custom fields, header placements, aliases, values trimmed and case-insensitive": {
			opts: map[string]string{
				"transforms.outbox.route.by.field":                    "type",
				"transforms.outbox.route.topic.replacement":           "t.${routedByValue}",
				"transforms.outbox.table.field.event.id":              "aggregateid",
				"transforms.outbox.table.field.event.key":             "id",
				"transforms.outbox.table.field.event.payload":         "type",
				"transforms.outbox.table.fields.additional.placement": "aggregatetype: HEADER , created_at:Header:at",
				"transforms.outbox.table.op.invalid.behavior":         " Fatal ",
			},
			want: []relay.Record{{
				Topic: "t.REQUEST", Partition: -1, Key: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2"), Value: []byte("REQUEST"), Timestamp: at,
				Headers: []relay.Header{
					{Key: "id", Value: []byte("saga-1")},
					{Key: "aggregatetype", Value: []byte("credit-approval")},
					// ZonedTimestamp: UTC, six fraction digits.
					{Key: "at", Value: []byte("2024-05-01T12:00:00.123456Z")},
				},
			}},
		},
		"envelope placement: value is a struct, StringConverter writes Struct.toString": {
			opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:envelope:eventType,type:header"},
			want: []relay.Record{rec("outbox.event.credit-approval", `Struct{payload={"amount": 10},eventType=REQUEST}`,
				relay.Header{Key: "type", Value: []byte("REQUEST")})},
		},
		"envelope placement with JsonConverter": {
			opts: map[string]string{
				"transforms.outbox.table.fields.additional.placement": "type:envelope:eventType",
				"value.converter": relay.JSONConverter, "value.converter.schemas.enable": "false",
			},
			want: []relay.Record{rec("outbox.event.credit-approval", `{"payload":"{\"amount\": 10}","eventType":"REQUEST"}`)},
		},
		"partition placement": {
			opts:  map[string]string{"transforms.outbox.table.fields.additional.placement": "part:partition"},
			table: withColumn(relay.Column{Name: "part", Type: 23, TypeMod: -1}),
			row:   func(r relay.Row) { r["part"] = str("3") },
			want: []relay.Record{func() relay.Record {
				r := rec("outbox.event.credit-approval", `{"amount": 10}`)
				r.Partition = 3
				return r
			}()},
		},
		"missing placement column skipped with error.on.missing=false": {
			opts: map[string]string{
				"transforms.outbox.table.fields.additional.placement":        "nope:header,type:header",
				"transforms.outbox.table.fields.additional.error.on.missing": "FALSE",
			},
			want: []relay.Record{rec("outbox.event.credit-approval", `{"amount": 10}`, relay.Header{Key: "type", Value: []byte("REQUEST")})},
		},
		"boolean and timestamp header values converted by Connect": {
			opts:  map[string]string{"transforms.outbox.table.fields.additional.placement": "flag:header,at:header,n:header"},
			table: withColumn(relay.Column{Name: "flag", Type: 16, TypeMod: -1}, relay.Column{Name: "at", Type: 1114, TypeMod: -1}, relay.Column{Name: "n", Type: 1700, TypeMod: 655366}),
			row:   func(r relay.Row) { r["flag"], r["at"], r["n"] = str("t"), str("2020-01-02 03:04:05.5"), str("7.5") },
			want: []relay.Record{rec("outbox.event.credit-approval", `{"amount": 10}`,
				relay.Header{Key: "flag", Value: []byte("true")},
				relay.Header{Key: "at", Value: []byte("1577934245500000")}, // MicroTimestamp
				relay.Header{Key: "n", Value: []byte("7.50")})},            // numeric(10,2): BigDecimal
		},
		"event timestamp column": {
			opts:  map[string]string{"transforms.outbox.table.field.event.timestamp": "at"},
			table: withColumn(relay.Column{Name: "at", Type: 1114, TypeMod: 3}),
			row:   func(r relay.Row) { r["at"] = str("2020-01-02 03:04:05.678") },
			want: []relay.Record{func() relay.Record {
				r := rec("outbox.event.credit-approval", `{"amount": 10}`)
				r.Timestamp = time.UnixMilli(1577934245678)
				return r
			}()},
		},
		"null payload is a tombstone": {
			row:  func(r relay.Row) { r["payload"] = nil },
			want: []relay.Record{rec("outbox.event.credit-approval", "<nil>")},
		},
		"blank payload is a tombstone when configured (trimmed first)": {
			opts:  map[string]string{"transforms.outbox.route.tombstone.on.empty.payload": "true"},
			table: withType("payload", 25),
			row:   func(r relay.Row) { r["payload"] = str(" \n\t") },
			want:  []relay.Record{rec("outbox.event.credit-approval", "<nil>")},
		},
		"blank payload is a value otherwise": {
			table: withType("payload", 25),
			row:   func(r relay.Row) { r["payload"] = str(" ") },
			want:  []relay.Record{rec("outbox.event.credit-approval", " ")},
		},
		"expanded JSON payload with JsonConverter": {
			opts: map[string]string{
				"transforms.outbox.table.expand.json.payload": "true",
				"value.converter": relay.JSONConverter, "value.converter.schemas.enable": "false",
			},
			row:  func(r relay.Row) { r["payload"] = str(`{"amount": 10.50, "items": [1, 2], "note": null}`) },
			want: []relay.Record{rec("outbox.event.credit-approval", `{"amount":10.5,"items":[1,2]}`)},
		},
		"null key": {
			row: func(r relay.Row) { r["aggregateid"] = nil },
			want: []relay.Record{func() relay.Record {
				r := rec("outbox.event.credit-approval", `{"amount": 10}`)
				r.Key = nil
				return r
			}()},
		},
		"deletes are ignored": {want: nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _, err := connectorWith(t, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			table := outboxTable
			if tc.table != nil {
				table = *tc.table
			}
			row := outboxRow()
			if tc.row != nil {
				tc.row(row)
			}
			ch := insert(table, row)
			if strings.HasPrefix(name, "deletes") {
				ch.Op, ch.Before, ch.After = relay.OpDelete, row, nil
			}
			got, err := c.Route(ch)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func withColumn(cols ...relay.Column) *relay.Table {
	t := outboxTable
	t.Columns = append(append([]relay.Column(nil), t.Columns...), cols...)
	return &t
}

func withType(name string, oid uint32) *relay.Table {
	t := outboxTable
	t.Columns = append([]relay.Column(nil), t.Columns...)
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			t.Columns[i].Type = oid
		}
	}
	return &t
}

func TestRouteErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts  map[string]string
		table relay.Table
		op    relay.Op
		row   func(relay.Row)
		want  string
	}{
		"missing route field":     {row: func(r relay.Row) { delete(r, "aggregatetype") }, want: "no value"},
		"null route field":        {row: func(r relay.Row) { r["aggregatetype"] = nil }, want: "route field aggregatetype is NULL"},
		"route field not STRING":  {opts: map[string]string{"transforms.outbox.route.by.field": "created_at"}, table: *withType("created_at", 23), row: func(r relay.Row) { r["created_at"] = str("1") }, want: "is not of type STRING"},
		"missing placement":       {opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "nope:header"}, want: "nope is not a valid field name"},
		"missing payload column":  {opts: map[string]string{"transforms.outbox.table.field.event.payload": "nope"}, want: "unable to find payload field nope"},
		"timestamptz event time":  {opts: map[string]string{"transforms.outbox.table.field.event.timestamp": "created_at"}, want: "is not a timestamp"},
		"partition not int4":      {opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:partition"}, want: "is not of type INT32"},
		"table not captured":      {table: relay.Table{Schema: "public", Name: "other"}, want: "table not captured"},
		"update under fatal":      {opts: map[string]string{"transforms.outbox.table.op.invalid.behavior": "fatal"}, op: relay.OpUpdate, want: "unexpected update of outbox table public.outboxevent"},
		"update under warn skips": {op: relay.OpUpdate, want: "unexpected update"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _, err := connectorWith(t, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			row := outboxRow()
			if tc.row != nil {
				tc.row(row)
			}
			table := outboxTable
			if tc.table.Name != "" {
				table = tc.table
			}
			ch := insert(table, row)
			if tc.op != 0 {
				ch.Op = tc.op
			}
			_, err = c.Route(ch)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Route error = %v, want containing %q", err, tc.want)
			}
			var skip *relay.UnexpectedUpdateError
			if asSkip := strings.HasPrefix(name, "update"); asSkip {
				if !errors.As(err, &skip) || skip.Fatal != (name == "update under fatal") {
					t.Errorf("error %v: want an UnexpectedUpdateError, fatal=%v", err, name == "update under fatal")
				}
			}
		})
	}
}
