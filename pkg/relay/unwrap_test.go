package relay_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sagabox/sagabox/pkg/relay"
)

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
