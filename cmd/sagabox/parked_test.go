package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
)

// A reply for a saga the order service never started is parked once it
// has been waited for (SAGA_EARLY_REPLY_WAIT: the saga might only not be
// visible yet); the CLI lists it, and a replay fails with the handler's reason while the saga is
// still unknown (the message stays parked).
func TestParkedCommand(t *testing.T) {
	t.Parallel()
	url, broker := startOrderService(t)
	prod, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	event := uuid.NewString()
	rec := &kgo.Record{Topic: "credit-approval.response", Key: []byte(uuid.NewString()), Value: []byte(`{"status":"APPROVED"}`),
		Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(event)}, {Key: "eventType", Value: []byte("CreditUpdated")}}}
	if err := prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ORDER_URL": url, "ADMIN_TOKEN": "ops:" + cliToken}
	parked := func(args ...string) (string, error) {
		t.Helper()
		var stdout, stderr strings.Builder
		err := run(context.Background(), append([]string{"parked"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
		return stdout.String(), err
	}
	var out string
	testenv.Eventually(t, 30*time.Second, func() bool {
		out, err = parked("list", "--service", "order")
		return err == nil && strings.Contains(out, event)
	}, "parked message not listed: %q %v", &out, &err)
	fields := strings.Fields(strings.Split(out, "\n")[1])
	if fields[0] != "order" || fields[2] != "PARKED" || fields[3] != "credit-approval.response" {
		t.Fatalf("list line = %q", fields)
	}
	id := fields[1]
	if _, err := parked("replay", "--service", "order", id, "--reason", "try"); err == nil || !strings.Contains(err.Error(), "saga not found") {
		t.Errorf("replay of a reply to an unknown saga: %v, want the handler's error", err)
	}
	if out, _ := parked("list", "--service", "order"); !strings.Contains(out, event) {
		t.Errorf("message no longer parked after a failed replay:\n%s", out)
	}
	if _, err := parked("replay", "--service", "order", "999999", "--reason", "try"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("replay of an unknown message: %v, want not found", err)
	}
	if _, err := parked("replay", "--service", "order", id); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("replay without a reason: %v", err)
	}
	env["ADMIN_TOKEN"] = "wrong-token-0123456789"
	if _, err := parked("list", "--service", "order"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("list with a wrong token: %v, want a 401", err)
	}
}
