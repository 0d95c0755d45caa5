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
