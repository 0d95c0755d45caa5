package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sagabox/sagabox/pkg/relay"
)

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
		ExtendedHeaders: true, TombstonesOnDelete: false, Skipped: map[relay.Op]bool{'t': true},
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
		Skipped:   map[relay.Op]bool{'d': true, 't': true}, // the removal of ended sagas is not a change of state
		Transform: relay.TransformExtractNewRecordState, Unwrap: relay.ExtractNewRecordState{DeleteHandling: relay.DeleteTombstone},
	}
	if diff := cmp.Diff(wantSaga, cs[2], ignore); diff != "" {
		t.Errorf("order-sagastate (-want +got):\n%s", diff)
	}
	if got, want := cs[1].ConnString(), "postgres://orderuser:orderpw@postgres:5432/orderdb?sslmode=disable"; got != want {
		t.Errorf("ConnString = %q, want %q", got, want)
	}
}

// badConnectorOptions are options on top of connectorWith's valid
// configuration that make a connector file fail to load, with what the
// error says.
var badConnectorOptions = map[string]struct {
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
	"truncates published":   {opts: map[string]string{"skipped.operations": "none"}, want: "key skipped.operations: not supported by the relay (it never publishes truncates"},
	"truncates not skipped": {opts: map[string]string{"skipped.operations": "d"}, want: "key skipped.operations: not supported by the relay (it never publishes truncates"},
	"unknown operation":     {opts: map[string]string{"skipped.operations": "d,x,t"}, want: `key skipped.operations: unknown operation "x"`},
}

func TestLoadConnectorErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range badConnectorOptions {
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
