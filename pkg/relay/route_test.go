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

func TestLoadConnectors(t *testing.T) {
	t.Parallel()
	cs, err := relay.LoadConnectors(connectorsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"customer-outbox", "order-outbox", "order-sagastate", "payment-outbox"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	ignore := cmpopts.IgnoreUnexported(relay.Connector{}, relay.EventRouter{}, relay.TableFilter{})
	wantOrder := relay.Connector{
		Name: "order-outbox", Host: "postgres", Port: 5432, User: "orderuser", Password: "orderpw", DBName: "orderdb",
		SlotName: "order_outbox", PublicationName: "order_outbox", PublicationAutocreate: "filtered",
		TopicPrefix: "order", Tables: relay.TableFilter{IncludeSchemas: []string{"public"}, IncludeTables: []string{"public.outboxevent"}},
		SnapshotMode: relay.SnapshotInitial, HeartbeatInterval: 10 * time.Second, HeartbeatTopic: "__debezium-heartbeat.order",
		ExtendedHeaders: true, TombstonesOnDelete: false,
		Key: relay.Converter{Class: relay.StringConverter}, Value: relay.Converter{Class: relay.StringConverter},
		Transform: relay.TransformEventRouter,
		EventRouter: relay.EventRouter{
			RouteByField: "aggregatetype", RouteTopicRegex: "(?<routedByValue>.*)",
			RouteTopicReplacement: "${routedByValue}.request",
			FieldEventID:          "id", FieldEventKey: "aggregateid", FieldEventPayload: "payload",
			Placements: []relay.Placement{
				{Column: "type", Place: relay.PlaceHeader, Alias: "eventType"},
				{Column: "traceparent", Place: relay.PlaceHeader, Alias: "traceparent"},
				{Column: "tracestate", Place: relay.PlaceHeader, Alias: "tracestate"},
			},
			ErrorOnMissing: true, OnInvalidOp: relay.InvalidOpWarn,
		},
	}
	if diff := cmp.Diff(wantOrder, cs[1], ignore); diff != "" {
		t.Errorf("order-outbox (-want +got):\n%s", diff)
	}
	wantSaga := relay.Connector{
		Name: "order-sagastate", Host: "postgres", Port: 5432, User: "orderuser", Password: "orderpw", DBName: "orderdb",
		SlotName: "order_sagastate", PublicationName: "order_sagastate", PublicationAutocreate: "filtered",
		TopicPrefix: "sagas", Tables: relay.TableFilter{IncludeSchemas: []string{"public"}, IncludeTables: []string{"public.sagastate"}},
		SnapshotMode: relay.SnapshotInitial, HeartbeatInterval: 10 * time.Second, HeartbeatTopic: "__debezium-heartbeat.sagas",
		ExtendedHeaders: true, Key: relay.Converter{Class: relay.JSONConverter}, Value: relay.Converter{Class: relay.JSONConverter},
		Transform: relay.TransformExtractNewRecordState, Unwrap: relay.ExtractNewRecordState{DeleteHandling: relay.DeleteTombstone},
	}
	if diff := cmp.Diff(wantSaga, cs[2], ignore); diff != "" {
		t.Errorf("order-sagastate (-want +got):\n%s", diff)
	}
	if got, want := cs[1].ConnString(), "postgres://orderuser:orderpw@postgres:5432/orderdb?sslmode=disable"; got != want {
		t.Errorf("ConnString = %q, want %q", got, want)
	}
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
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test-connector.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := relay.LoadConnector(path)
	return c, path, err
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

func TestLoadConnectorErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts map[string]string
		want string
	}{
		"unsupported transform": {
			opts: map[string]string{"transforms.outbox.type": "org.apache.kafka.connect.transforms.RegexRouter"},
			want: `key transforms.outbox.type: unsupported transform "org.apache.kafka.connect.transforms.RegexRouter"`,
		},
		"two transforms":        {opts: map[string]string{"transforms": "outbox,route"}, want: "key transforms: want exactly one transform"},
		"no transform":          {opts: map[string]string{"transforms": ""}, want: "key transforms: want exactly one transform"},
		"bad placement":         {opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type"}, want: `placement "type": want column:placement[:alias]`},
		"unknown placement":     {opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:body"}, want: `unknown placement "body"`},
		"bad regex":             {opts: map[string]string{"transforms.outbox.route.topic.regex": "(unclosed"}, want: "key transforms.outbox.route.topic.regex:"},
		"bad tombstone flag":    {opts: map[string]string{"transforms.outbox.route.tombstone.on.empty.payload": "maybe"}, want: `key transforms.outbox.route.tombstone.on.empty.payload: invalid boolean "maybe"`},
		"bad invalid behaviour": {opts: map[string]string{"transforms.outbox.table.op.invalid.behavior": "ignore"}, want: `key transforms.outbox.table.op.invalid.behavior: unsupported value "ignore"`},
		"missing dbname":        {opts: map[string]string{"database.dbname": ""}, want: "key database.dbname: missing"},
		"bad port":              {opts: map[string]string{"database.port": "x"}, want: `key database.port: invalid integer "x"`},
		"bad table regex":       {opts: map[string]string{"table.include.list": "public.(x"}, want: `key table.include.list: entry "public.(x"`},
		"other plugin":          {opts: map[string]string{"plugin.name": "decoderbufs"}, want: `key plugin.name: not supported by the relay`},
		"no converter":          {opts: map[string]string{"key.converter": ""}, want: "key key.converter: missing"},
		"json with schemas":     {opts: map[string]string{"value.converter": relay.JSONConverter}, want: "key value.converter.schemas.enable: must be false"},
		"avro":                  {opts: map[string]string{"value.converter": "io.confluent.connect.avro.AvroConverter"}, want: `unsupported "io.confluent.connect.avro.AvroConverter"`},
		"unknown snapshot mode": {opts: map[string]string{"snapshot.mode": "initial_only"}, want: `key snapshot.mode: unsupported value "initial_only"`},
		"column filter":         {opts: map[string]string{"column.exclude.list": "public.outboxevent.created_at"}, want: "key column.exclude.list: not supported"},
		"unwrap add.fields":     {opts: map[string]string{"transforms.outbox.type": relay.TransformExtractNewRecordState, "transforms.outbox.add.fields": "op"}, want: "key transforms.outbox.add.fields: not supported"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, path, err := connectorWith(t, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadConnector error = %v, want containing %q and the path", err, tc.want)
			}
		})
	}
}

func TestParsePlacements(t *testing.T) {
	t.Parallel()
	h := func(col, alias string) relay.Placement {
		return relay.Placement{Column: col, Place: relay.PlaceHeader, Alias: alias}
	}
	for in, want := range map[string][]relay.Placement{
		"":                         nil,
		"type:header:eventType":    {h("type", "eventType")},
		"type:header":              {h("type", "type")},
		" a:Header:x , b:HEADER ,": {h("a", "x"), h("b", "b")},
		"a:envelope,b:partition":   {{Column: "a", Place: relay.PlaceEnvelope, Alias: "a"}, {Column: "b", Place: relay.PlacePartition, Alias: "b"}},
	} {
		got, err := relay.ParsePlacements(in)
		if err != nil {
			t.Errorf("ParsePlacements(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParsePlacements(%q) (-want +got):\n%s", in, diff)
		}
	}
	for _, in := range []string{"a", "a:body:b", ":header:x", "a:header:", "a:header:b:c", "a:header,,b:header"} {
		if _, err := relay.ParsePlacements(in); err == nil {
			t.Errorf("ParsePlacements(%q): no error", in)
		}
	}
}

func TestTableFilter(t *testing.T) {
	t.Parallel()
	c, _, err := connectorWith(t, map[string]string{"table.include.list": `public\.outbox.*, other\.t\,x`})
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]bool{
		"public.outboxevent": true, "PUBLIC.OUTBOXEVENT": true, "public.outbox_old": true,
		"public.myoutbox": false, "other.t,x": true, "pg_catalog.outboxevent": false,
	} {
		schema, name, _ := strings.Cut(table, ".")
		if got := c.Tables.Match(schema, name); got != want {
			t.Errorf("Match(%s) = %v, want %v", table, got, want)
		}
	}
}

// sagaTable is the sagastate table as the migrations create it.
var sagaTable = relay.Table{Schema: "public", Name: "sagastate", Key: []string{"id"}, Columns: []relay.Column{
	{Name: "id", Type: 2950, TypeMod: -1}, {Name: "type", Type: 25, TypeMod: -1}, {Name: "payload", Type: 3802, TypeMod: -1},
	{Name: "current_step", Type: 25, TypeMod: -1}, {Name: "step_status", Type: 3802, TypeMod: -1},
	{Name: "status", Type: 25, TypeMod: -1}, {Name: "version", Type: 23, TypeMod: -1},
	{Name: "created_at", Type: 1184, TypeMod: -1}, {Name: "updated_at", Type: 1184, TypeMod: -1},
}}

func TestRouteExtractNewRecordState(t *testing.T) {
	t.Parallel()
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-sagastate.json"))
	if err != nil {
		t.Fatal(err)
	}
	const id = "5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11"
	row := relay.Row{
		"id": str(id), "type": str("order-placement"),
		"payload": str(`{"order_id": 1, "note": "<a&b>"}`), "current_step": str("credit-approval"),
		"step_status": str(`{"credit-approval": "STARTED"}`), "status": str("STARTED"), "version": str("0"),
		"created_at": str("2024-05-01 12:00:00.123456+00"), "updated_at": str("2024-05-01 14:30:00+02:30"),
	}
	key := []byte(`{"id":"` + id + `"}`)
	value := []byte(`{"id":"` + id + `","type":"order-placement",` +
		`"payload":"{\"order_id\": 1, \"note\": \"<a&b>\"}","current_step":"credit-approval",` +
		`"step_status":"{\"credit-approval\": \"STARTED\"}","status":"STARTED","version":0,` +
		`"created_at":"2024-05-01T12:00:00.123456Z","updated_at":"2024-05-01T12:00:00.000000Z"}`)
	for name, tc := range map[string]struct {
		ch   relay.Change
		want []relay.Record
	}{
		"insert": {ch: insert(sagaTable, row), want: []relay.Record{
			{Topic: "sagas.public.sagastate", Partition: -1, Key: key, Value: value, Headers: contextHeaders("sagas")},
		}},
		"update": {ch: relay.Change{Table: sagaTable, Op: relay.OpUpdate, Before: row, After: row, RunID: "run-1"}, want: []relay.Record{
			{Topic: "sagas.public.sagastate", Partition: -1, Key: key, Value: value, Headers: contextHeaders("sagas")},
		}},
		// Default delete.tombstone.handling.mode=tombstone: the "after" field,
		// null but with its schema, which JsonConverter writes as null.
		"delete": {ch: relay.Change{Table: sagaTable, Op: relay.OpDelete, Before: row, RunID: "run-1"}, want: []relay.Record{
			{Topic: "sagas.public.sagastate", Partition: -1, Key: key, Value: []byte("null"), Headers: contextHeaders("sagas")},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := c.Route(tc.ch)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteExtractNewRecordStateTypes(t *testing.T) {
	t.Parallel()
	c, _, err := connectorWith(t, map[string]string{
		"table.include.list": "s.t", "transforms.outbox.type": relay.TransformExtractNewRecordState,
		"key.converter": relay.JSONConverter, "key.converter.schemas.enable": "false",
		"value.converter": relay.JSONConverter, "value.converter.schemas.enable": "false",
	})
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string, oid uint32, mod int32) relay.Column {
		return relay.Column{Name: name, Type: oid, TypeMod: mod}
	}
	table := relay.Table{Schema: "s", Name: "t", Columns: []relay.Column{
		col("a", 21, -1), col("b", 20, -1), col("c", 16, -1), col("d", 16, -1), col("e", 701, -1), col("f", 700, -1),
		col("g", 1700, -1), col("h", 114, -1), col("i", 1700, 655366), col("j", 1082, -1), col("k", 1114, -1),
		col("l", 1114, 3), col("m", 1083, -1), col("n", 17, -1), col("o", 1184, 3), col("p", 1184, 0),
	}}
	row := relay.Row{
		"a": str("-3"), "b": str("9007199254740993"), "c": str("t"), "d": str("f"), "e": str("1.5e+20"), "f": str("NaN"),
		"g": str("12.50"), "h": str(`{"x":1}`), "i": str("7.5"), "j": str("2020-01-02"), "k": str("2020-01-02 03:04:05.123456"),
		"l": str("2020-01-02 03:04:05.123"), "m": str("03:04:05.5"), "n": str(`\x04e2`), "o": str("2020-01-02 03:04:05.1+01"),
		"p": str("2020-01-02 03:04:05+00"),
	}
	got, err := c.Route(insert(table, row))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":-3,"b":9007199254740993,"c":true,"d":false,"e":1.5E20,"f":"NaN",` +
		`"g":{"scale":1,"value":"fQ=="},"h":"{\"x\":1}","i":"Au4=","j":18263,"k":1577934245123456,` +
		`"l":1577934245123,"m":11045500000,"n":"BOI=","o":"2020-01-02T02:04:05.100Z","p":"2020-01-02T03:04:05Z"}`
	if len(got) != 1 || got[0].Key != nil || string(got[0].Value) != want {
		t.Errorf("record = %+v\nvalue %s\nwant  %s", got, got[0].Value, want)
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ connector, key, value string }{
		{"order-outbox", "Struct{serverName=order}", "Struct{ts_ms=1714564800000}"},
		{"order-sagastate", `{"serverName":"sagas"}`, `{"ts_ms":1714564800000}`},
	} {
		c, err := relay.LoadConnector(filepath.Join(connectorsDir, tc.connector+".json"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Heartbeat(at)
		if err != nil {
			t.Fatal(err)
		}
		want := relay.Record{Topic: "__debezium-heartbeat." + c.TopicPrefix, Partition: 0, Key: []byte(tc.key), Value: []byte(tc.value)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s heartbeat (-want +got):\n%s", tc.connector, diff)
		}
	}
}
