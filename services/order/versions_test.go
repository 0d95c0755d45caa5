package order_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/examples/inventory/stock"
	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/stack"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/relay"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
	"github.com/sagabox/sagabox/registry"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const adminToken = "versions-admin-token-0123456789"

// A changed definition deployed while sagas are in flight, with real order
// service processes (testdata/versioned): sagas started on version 1 wait
// for the payment service, the order service is killed and started again
// holding versions 1 and 2 (a step added first, the payment's deadline
// doubled); the old sagas finish on version 1, the new ones run version 2.
// Then a service that no longer holds version 2 leaves a version-2 saga as
// it is — reported by the operator API, the stats and a metric, its reply
// parked — until a service holding version 2 runs again and the reply is
// replayed.
func TestRestartWithANewDefinitionVersion(t *testing.T) {
	t.Parallel()
	v := startVersions(t)
	ctx := context.Background()

	v.stopPayment()
	v.startOrder("1")
	old := []api.Placed{v.place(), v.place()}
	for _, p := range old {
		v.awaitWaiting(p.SagaID, "payment")
	}

	v.restartOrder("1,2") // a deploy: the process is killed, the new one holds both
	fresh := []api.Placed{v.place(), v.place()}
	for _, p := range fresh {
		v.awaitWaiting(p.SagaID, "payment")
	}
	v.startPayment()
	for _, p := range old {
		s := v.awaitEnd(p.SagaID)
		if s.DefinitionVersion != 1 || s.Status != saga.StatusSucceeded || len(s.StepStatus) != 2 {
			t.Errorf("old saga %s: version %d, %s, steps %v; want version 1 SUCCEEDED with its two steps", s.ID,
				s.DefinitionVersion, s.Status, s.StepStatus)
		}
		v.expectPaymentWait(p.SagaID, 30*time.Second)
	}
	for _, p := range fresh {
		s := v.awaitEnd(p.SagaID)
		if s.DefinitionVersion != 2 || s.Status != saga.StatusSucceeded || s.StepStatus["inventory-reservation"] != saga.StepSucceeded {
			t.Errorf("new saga %s: version %d, %s, steps %v; want version 2 SUCCEEDED with the stock reserved", s.ID,
				s.DefinitionVersion, s.Status, s.StepStatus)
		}
		v.expectPaymentWait(p.SagaID, time.Minute)
	}
	if got := v.onHand(); got != 100-2*orderQuantity {
		t.Errorf("stock on hand %d, want %d: only the version-2 sagas reserve it", got, 100-2*orderQuantity)
	}

	// A version-2 saga in flight, and a service without version 2.
	v.stopPayment()
	orphan := v.place()
	v.awaitWaiting(orphan.SagaID, "payment")
	v.restartOrder("1")
	d, err := v.admin.Saga(ctx, orphan.SagaID)
	if err != nil || !d.Saga.UnknownVersion || d.Saga.DefinitionVersion != 2 {
		t.Errorf("saga %s: %+v, %v; want it reported as of an unknown version", orphan.SagaID, d.Saga, err)
	}
	if st, err := v.admin.SagaStats(ctx, nil); err != nil || st.UnknownVersion != 1 {
		t.Errorf("stats: %d sagas of an unknown version (%v), want 1", st.UnknownVersion, err)
	}
	if got := v.metric("sagabox_sagas_unknown_version"); got != "1" {
		t.Errorf("sagabox_sagas_unknown_version %q, want 1", got)
	}
	v.startPayment()
	testenv.Eventually(t, 30*time.Second, func() bool {
		l, err := v.admin.Parked(ctx, nil)
		return err == nil && len(l.Parked) == 1 && strings.Contains(l.Parked[0].Error, "version")
	}, "the reply to the version-2 saga was not parked")
	if s := v.saga(orphan.SagaID); s.Status != saga.StatusStarted || s.StepStatus["payment"] != saga.StepStarted {
		t.Errorf("saga of an unknown version changed: %+v", s)
	}
	v.restartOrder("1,2")
	if r, err := v.admin.ReplayAllParked(ctx, "version 2 deployed again"); err != nil || len(r.Replayed) != 1 {
		t.Fatalf("replay: %+v, %v", r, err)
	}
	if s := v.awaitEnd(orphan.SagaID); s.Status != saga.StatusSucceeded {
		t.Errorf("saga %s after version 2 came back: %s", orphan.SagaID, s.Status)
	}
}

const orderQuantity = 2

// versions is the system of the test: the order service as a process of
// testdata/versioned, the rest — relays, customer, payment, the example's
// stock service — in the test's process.
type versions struct {
	t       *testing.T
	bin     string
	env     []string
	addr    string
	order   api.Client
	admin   api.Client
	proc    *exec.Cmd
	stack   *stack.Stack
	stockDB *pgxpool.Pool
}

func startVersions(t *testing.T) *versions {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "versioned")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/versioned").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root := testenv.RepoRoot(t)
	var connectors []relay.Connector
	for _, dir := range []string{filepath.Join(root, "debezium", "connectors"), filepath.Join(root, "examples", "inventory", "connectors")} {
		cs, err := relay.LoadConnectors(dir)
		if err != nil {
			t.Fatal(err)
		}
		connectors = append(connectors, slices.DeleteFunc(cs, func(c relay.Connector) bool { return c.DBName == "shopdb" })...)
	}
	specs := []stack.ServiceSpec{{Name: "stock", Database: "stockdb", Service: stock.Service, Migrations: stock.Service().Migrations}}
	for _, name := range []string{"customer", "payment"} {
		c, err := registry.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, stack.ServiceSpec{Name: c.Name, Database: c.Database, Service: c.Service,
			Migrations: c.Migrations, CardKeys: c.CardKeys})
	}
	dbURLs := map[string]string{"orderdb": testenv.Database(t, migrations.Order())}
	addrs := map[string]string{}
	for _, s := range specs {
		dbURLs[s.Database] = testenv.Database(t, nil)
		addrs[s.Name] = freeAddr(t)
	}
	brokerAddr, _ := testenv.Kafka(t)
	keys, _ := testenv.CardKeys(t)
	st, err := stack.Start(context.Background(), stack.Config{
		Services: specs, Connectors: connectors, DatabaseURLs: dbURLs, Brokers: []string{brokerAddr}, HTTPAddrs: addrs,
		SlotSuffix: "_" + testenv.Name("v"), CardKeys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(st.Close)
	v := &versions{t: t, bin: bin, stack: st, addr: freeAddr(t), stockDB: testenv.Pool(t, dbURLs["stockdb"])}
	v.env = append(os.Environ(), "DATABASE_URL="+dbURLs["orderdb"], "KAFKA_BROKERS="+brokerAddr, "HTTP_ADDR="+v.addr,
		"MIGRATE=false", "CARD_KEYS="+keys, "ADMIN_TOKEN="+adminToken, "SAGA_SWEEP_INTERVAL=100ms", "OTEL_SDK_DISABLED=true")
	v.order = api.Client{Name: "order", URLs: []string{"http://" + v.addr}}
	v.admin = api.Client{Name: "order", URLs: []string{"http://" + v.addr}, Token: adminToken}
	if _, err := v.stockDB.Exec(context.Background(), `INSERT INTO stock (sku, on_hand) VALUES ('123', 100)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.killOrder)
	return v
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// startOrder starts the order service holding order-placement versions.
func (v *versions) startOrder(versions string) {
	v.t.Helper()
	var out strings.Builder
	cmd := exec.Command(v.bin, "-versions", versions)
	cmd.Env, cmd.Stdout, cmd.Stderr = v.env, io.Discard, &out
	if err := cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	v.proc = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	testenv.Eventually(v.t, 60*time.Second, func() bool {
		select {
		case err := <-exited:
			v.t.Fatalf("order service exited: %v\n%s", err, out.String())
		default:
		}
		return !slices.Contains(v.order.Health(context.Background()), false)
	}, "the order service (versions %s) never became healthy", versions)
}

// killOrder kills the order service, as a crash or a redeploy would.
func (v *versions) killOrder() {
	if v.proc == nil {
		return
	}
	_ = v.proc.Process.Signal(syscall.SIGKILL)
	_, _ = v.proc.Process.Wait()
	v.proc = nil
}

func (v *versions) restartOrder(versions string) {
	v.t.Helper()
	v.killOrder()
	v.startOrder(versions)
}

func (v *versions) stopPayment() {
	v.t.Helper()
	if err := v.stack.StopService("payment"); err != nil {
		v.t.Fatal(err)
	}
}

func (v *versions) startPayment() {
	v.t.Helper()
	if err := v.stack.StartService("payment"); err != nil {
		v.t.Fatal(err)
	}
}

func (v *versions) place() api.Placed {
	v.t.Helper()
	item, quantity, customer, due, card := int64(123), int64(orderQuantity), int64(456), int64(1000), "4111111111111111"
	p, _, err := v.order.PlaceOrder(context.Background(), api.PlaceOrder{ItemID: &item, Quantity: &quantity,
		CustomerID: &customer, PaymentDue: &due, CreditCardNo: &card}, "")
	if err != nil {
		v.t.Fatal(err)
	}
	return p
}

func (v *versions) saga(id uuid.UUID) sagaapi.Saga {
	v.t.Helper()
	d, err := v.admin.Saga(context.Background(), id)
	if err != nil {
		v.t.Fatal(err)
	}
	return d.Saga
}

// awaitWaiting waits until saga id waits for step's reply.
func (v *versions) awaitWaiting(id uuid.UUID, step string) {
	v.t.Helper()
	var s sagaapi.Saga
	testenv.Eventually(v.t, 30*time.Second, func() bool {
		s = v.saga(id)
		return s.StepStatus[step] == saga.StepStarted
	}, "saga %s never waited for %s: %+v", id, step, &s)
}

func (v *versions) awaitEnd(id uuid.UUID) sagaapi.Saga {
	v.t.Helper()
	var s sagaapi.Saga
	testenv.Eventually(v.t, 30*time.Second, func() bool {
		s = v.saga(id)
		return s.Status.Done()
	}, "saga %s never ended: %+v", id, &s)
	return s
}

// expectPaymentWait checks, from saga id's history, that its payment
// request waited wait for its reply.
func (v *versions) expectPaymentWait(id uuid.UUID, wait time.Duration) {
	v.t.Helper()
	d, err := v.admin.Saga(context.Background(), id)
	if err != nil {
		v.t.Fatal(err)
	}
	for _, h := range d.History {
		if h.Step == "payment" && h.To == saga.StepStarted && h.From == "" {
			if h.Deadline == nil || h.Deadline.Sub(h.At).Round(time.Second) != wait {
				v.t.Errorf("saga %s: payment sent at %v with deadline %v, want a wait of %v", id, h.At, h.Deadline, wait)
			}
			return
		}
	}
	v.t.Errorf("saga %s: no payment request in its history", id)
}

func (v *versions) onHand() int64 {
	v.t.Helper()
	var n int64
	if err := v.stockDB.QueryRow(context.Background(), `SELECT on_hand FROM stock WHERE sku = '123'`).Scan(&n); err != nil {
		v.t.Fatal(err)
	}
	return n
}

// metric reads one unlabelled metric of the order service.
func (v *versions) metric(name string) string {
	v.t.Helper()
	u := url.URL{Scheme: "http", Host: v.addr, Path: "/metrics"}
	resp, err := http.Get(u.String())
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			return value
		}
	}
	return ""
}
