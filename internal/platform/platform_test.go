package platform

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	def := LocalDefaults("order", ":8080")

	got, err := LoadConfig(env(nil), def)
	if err != nil || !cmp.Equal(def, got) {
		t.Errorf("empty environment: %v, config differs from defaults: %s", err, cmp.Diff(def, got))
	}

	got, err = LoadConfig(env(map[string]string{
		"HTTP_ADDR": ":9000", "DATABASE_URL": "postgres://u:p@db:5432/orderdb", "KAFKA_BROKERS": "k1:9092, k2:9092,",
		"MIGRATE": "false", "OUTBOX_RETENTION": "1h", "LOG_LEVEL": "debug", "ADMIN_TOKEN": "ops:0123456789abcdef",
	}), def)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "order-service", HTTPAddr: ":9000", DatabaseURL: "postgres://u:p@db:5432/orderdb",
		Brokers: []string{"k1:9092", "k2:9092"}, Retention: DefaultRetention(), LogLevel: slog.LevelDebug}
	want.Retention.Outbox = time.Hour
	want.AdminTokens, _ = ParseAdminTokens("ops:0123456789abcdef")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}

	// Every problem is reported at once.
	_, err = LoadConfig(env(map[string]string{
		"MIGRATE": "sometimes", "OUTBOX_RETENTION": "-1h", "LOG_LEVEL": "loud", "DATABASE_URL": "::not a url",
		"ADMIN_TOKEN": "short",
	}), def)
	if err == nil {
		t.Fatal("invalid environment accepted")
	}
	for _, key := range []string{"MIGRATE", "OUTBOX_RETENTION", "LOG_LEVEL", "DATABASE_URL", "ADMIN_TOKEN"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

// Each retention outlasts the one before it, or the service does not
// start: a duplicate could otherwise arrive after what makes it harmless
// is gone.
func TestRetention(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	def := LocalDefaults("order", ":8080")
	got, err := LoadConfig(env(map[string]string{"OUTBOX_RETENTION": "90m", "KAFKA_TOPIC_RETENTION": "2h", "CONSUMED_RETENTION": "3h",
		"SAGA_RETENTION": "1d", "STEP_RECORD_RETENTION": "2d", "PARKED_RETENTION": "10d"}), def)
	want := Retention{Outbox: 90 * time.Minute, Topics: 2 * time.Hour, Journal: 3 * time.Hour, Sagas: 24 * time.Hour,
		Steps: 48 * time.Hour, Parked: 240 * time.Hour}
	if err != nil || got.Retention != want {
		t.Errorf("retention %+v (%v), want %+v", got.Retention, err, want)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"journal shorter than the topics": {map[string]string{"CONSUMED_RETENTION": "1d"}, "CONSUMED_RETENTION (24h0m0s) must outlast KAFKA_TOPIC_RETENTION (48h0m0s)"},
		"journal shorter than the outbox": {map[string]string{"OUTBOX_RETENTION": "4d"}, "must outlast KAFKA_TOPIC_RETENTION (48h0m0s) and OUTBOX_RETENTION (96h0m0s)"},
		"sagas shorter than the journal":  {map[string]string{"SAGA_RETENTION": "2d"}, "SAGA_RETENTION (48h0m0s) must outlast CONSUMED_RETENTION (72h0m0s)"},
		"step records shorter than sagas": {map[string]string{"STEP_RECORD_RETENTION": "7d"}, "STEP_RECORD_RETENTION (168h0m0s) must outlast SAGA_RETENTION (168h0m0s)"},
		"not a duration":                  {map[string]string{"PARKED_RETENTION": "a month"}, `PARKED_RETENTION="a month": want a positive duration`},
		"zero days":                       {map[string]string{"SAGA_RETENTION": "0d"}, `SAGA_RETENTION="0d": want a positive duration`},
	} {
		if _, err := LoadConfig(env(tc.env), def); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
