// Package e2e_test runs the whole system — the three services, the outbox
// relays, a real PostgreSQL server and a real Kafka-protocol broker — and
// checks the order-placement saga from the outside: over HTTP, in the
// databases and on the topics.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/api/apitest"
	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/stack"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/registry"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// system is one running stack with fresh databases and broker.
type system struct {
	t       testing.TB
	stack   *stack.Stack
	urls    map[string]string // service → base URL
	dbs     map[string]*pgxpool.Pool
	brokers []string
	// keys are the card keys of the order and payment services, as
	// CARD_KEYS gives them (keysEnv) and parsed.
	keysEnv string
	keys    card.Keys
	check   *apitest.Checker
}

type options struct {
	tracing func(component string) trace.TracerProvider
	env     map[string]string
	// cardKeys is the ring (CARD_KEYS) of the order and payment services;
	// empty: one fresh key.
	cardKeys string
	// stdout receives the services' logs (besides E2E_LOGS' stderr).
	stdout io.Writer
}

// startSystemEnv starts a system whose components read env (OTEL_*).
func startSystemEnv(t testing.TB, env map[string]string) *system {
	t.Helper()
	return startSystem(t, options{env: env})
}

func repoFile(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

func startSystem(t testing.TB, opts options) *system {
	t.Helper()
	ctx := context.Background()
	brokerAddr, _ := testenv.Kafka(t)
	s := &system{t: t, urls: map[string]string{}, dbs: map[string]*pgxpool.Pool{}, brokers: []string{brokerAddr},
		check: apitest.Must(t)}
	dbURLs := map[string]string{}
	addrs := map[string]string{}
	var specs []stack.ServiceSpec
	for _, svc := range registry.Services() {
		specs = append(specs, stack.ServiceSpec{Name: svc.Name, Database: svc.Database, Service: svc.Service,
			Migrations: svc.Migrations, CardKeys: svc.CardKeys})
		u := testenv.Database(t, nil)
		dbURLs[svc.Database] = u
		s.dbs[svc.Name] = testenv.Pool(t, u)
		port, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[svc.Name] = "127.0.0.1:" + strconv.Itoa(port)
		s.urls[svc.Name] = "http://" + addrs[svc.Name]
	}
	if opts.cardKeys == "" {
		opts.cardKeys, _ = testenv.CardKeys(t)
	}
	keys, err := card.ParseKeys(opts.cardKeys)
	if err != nil {
		t.Fatal(err)
	}
	s.keysEnv, s.keys = opts.cardKeys, keys
	logs := io.Discard
	if os.Getenv("E2E_LOGS") != "" {
		logs = os.Stderr
	}
	if opts.stdout != nil {
		logs = io.MultiWriter(logs, opts.stdout)
	}
	st, err := stack.Start(ctx, stack.Config{
		Services:       specs,
		ConnectorsDir:  repoFile("debezium", "connectors"),
		DatabaseURLs:   dbURLs,
		Brokers:        s.brokers,
		HTTPAddrs:      addrs,
		SlotSuffix:     "_" + testenv.Name("s"),
		Stdout:         logs,
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
		TracerProvider: opts.tracing,
		Env:            func(k string) string { return opts.env[k] },
		CardKeys:       opts.cardKeys,
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	s.stack = st
	t.Cleanup(st.Close)
	for name := range s.urls {
		s.waitHealthy(name)
	}
	return s
}

func (s *system) waitHealthy(name string) {
	s.t.Helper()
	// A generous bound: the suite runs systems of several packages at once.
	testenv.Eventually(s.t, 90*time.Second, func() bool {
		if exited, err := s.stack.Exited(name); exited {
			s.t.Fatalf("%s service stopped: %v", name, err)
		}
		resp, err := http.Get(s.urls[name] + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "%s never became healthy", name)
}

// client is the typed client of service name, every answer checked against
// the OpenAPI document.
func (s *system) client(name string) api.Client {
	return api.Client{Name: name, URLs: []string{s.urls[name]}, Check: s.check.Check}
}

// adminClient is the order service's client with the admin token.
func (s *system) adminClient() api.Client {
	c := s.client("order")
	c.Token = adminToken
	return c
}

// do sends an HTTP request and decodes a JSON response into out (if not nil).
func (s *system) do(method, url string, body []byte, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

type placed struct {
	OrderID int64  `json:"orderId"`
	SagaID  string `json:"sagaId"`
	Status  string `json:"status"`
}

type orderView struct {
	OrderID    int64  `json:"orderId"`
	CustomerID int64  `json:"customerId"`
	PaymentDue int64  `json:"paymentDue"`
	Status     string `json:"status"`
	Saga       struct {
		ID          string            `json:"id"`
		Type        string            `json:"type"`
		Status      string            `json:"status"`
		CurrentStep string            `json:"currentStep"`
		StepStatus  map[string]string `json:"stepStatus"`
		Version     int               `json:"version"`
	} `json:"saga"`
}

type payment struct {
	OrderID int64  `json:"orderId"`
	Amount  int64  `json:"amount"`
	Status  string `json:"status"`
}

func requestFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoFile("requests", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *system) placeOrder(body []byte) placed {
	s.t.Helper()
	var o api.PlaceOrder
	if err := json.Unmarshal(body, &o); err != nil {
		s.t.Fatal(err)
	}
	p, _, err := s.client("order").PlaceOrder(context.Background(), o, "")
	if err != nil {
		s.t.Fatalf("POST /orders: %v", err)
	}
	return placed{OrderID: p.OrderID, SagaID: p.SagaID.String(), Status: p.Status}
}

func (s *system) order(id int64) orderView {
	s.t.Helper()
	o, err := s.client("order").Order(context.Background(), id)
	if err != nil {
		s.t.Fatalf("GET /orders/%d: %v", id, err)
	}
	v := orderView{OrderID: o.OrderID, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue, Status: o.Status}
	v.Saga.ID, v.Saga.Type, v.Saga.Status = o.Saga.ID.String(), o.Saga.Type, string(o.Saga.Status)
	v.Saga.CurrentStep, v.Saga.Version = o.Saga.CurrentStep, o.Saga.Version
	v.Saga.StepStatus = map[string]string{}
	for k, st := range o.Saga.StepStatus {
		v.Saga.StepStatus[k] = string(st)
	}
	return v
}

// waitSettled waits until order id is ACCEPTED or REJECTED and its saga has
// ended, and returns it.
func (s *system) waitSettled(id int64, timeout time.Duration) orderView {
	s.t.Helper()
	var v orderView
	testenv.Eventually(s.t, timeout, func() bool {
		v = s.order(id)
		return v.Status != "CREATED" && (v.Saga.Status == "SUCCEEDED" || v.Saga.Status == "ABORTED")
	}, "order %d did not settle: %+v", id, &v)
	return v
}

func (s *system) openLimit(customerID int64) int64 {
	s.t.Helper()
	c, err := s.client("customer").Customer(context.Background(), customerID)
	if err != nil {
		s.t.Fatalf("GET /customers/%d: %v", customerID, err)
	}
	return c.OpenLimit
}

func (s *system) payments(orderID int64) []payment {
	s.t.Helper()
	got, err := s.client("payment").Payments(context.Background(), orderID)
	if err != nil {
		s.t.Fatalf("GET /payments?orderId=%d: %v", orderID, err)
	}
	ps := []payment{}
	for _, p := range got {
		ps = append(ps, payment{OrderID: p.OrderID, Amount: p.Amount, Status: p.Status})
	}
	return ps
}

// records reads every record currently on topic (from the start).
func (s *system) records(topic string) []*kgo.Record {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// High watermarks first, then read up to them.
	ends := s.endOffsets(topic)
	var out []*kgo.Record
	got := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if got[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			s.t.Fatalf("read %s: timed out with %v of %v", topic, got, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				out = append(out, r)
			}
			got[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// endOffsets returns the high watermark of every partition of topic.
func (s *system) endOffsets(topic string) map[int32]int64 {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offsets, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		s.t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	ends := map[int32]int64{}
	offsets.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			ends[o.Partition] = o.Offset
		}
	})
	return ends
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
