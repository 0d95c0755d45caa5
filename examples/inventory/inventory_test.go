package inventory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/api/apitest"
	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/examples/inventory"
	"github.com/sagabox/sagabox/examples/inventory/shop"
	"github.com/sagabox/sagabox/examples/inventory/stock"
	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/stack"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/participant/participanttest"
	"github.com/sagabox/sagabox/pkg/relay"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
	"github.com/sagabox/sagabox/registry"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The participant contract suite, one call: every order of delivery,
// concurrent REQUEST and CANCEL (also across a commit not visible yet), bad
// messages; after each, an item's stock is set aside exactly while the
// saga's step is DONE.
func TestReservationContract(t *testing.T) {
	t.Parallel()
	const onHand = 100
	schema := stock.Service().Migrations
	participanttest.Run(t, participanttest.Subject[inventory.ReserveRequest, stock.Reserved]{
		Step:     stock.Reservation(),
		Database: func(t *testing.T) *pgxpool.Pool { return testenv.Pool(t, testenv.Database(t, schema)) },
		HeldDatabase: func(t *testing.T) *pgxpool.Pool {
			return testenv.Pool(t, testenv.HeldCommitDatabase(t, schema))
		},
		Request: func(t *testing.T, db *pgxpool.Pool, sagaID uuid.UUID) inventory.ReserveRequest {
			sku := "tea-" + sagaID.String()
			addStock(t, db, sku, onHand)
			return inventory.ReserveRequest{OrderID: 1, SKU: sku, Quantity: 3}
		},
		Held: func(t *testing.T, db *pgxpool.Pool, _ uuid.UUID, r inventory.ReserveRequest) int64 {
			return onHand - stockOf(t, db, r.SKU)
		},
		Amount: func(r inventory.ReserveRequest) int64 { return r.Quantity },
	})
}

func FuzzDecode(f *testing.F) { participanttest.FuzzDecode(f, stock.Reservation()) }

// The definition tested as data, without infrastructure: the walk of every
// path against the engine's invariants, and a payment refused after the
// stock and the credit were taken, which gives both back, the credit first.
func TestStockedOrderDefinition(t *testing.T) {
	t.Parallel()
	d := shop.Definition()
	order := shop.Order{OrderID: 1, CustomerID: 2, SKU: "tea", Quantity: 2, PaymentDue: 1000, CardSealed: "v1.k1.c2VhbGVk"}
	sagatest.Walk(t, d, sagatest.Payload(order))

	stockStep, credit, payment := d.Steps[0].Name, d.Steps[1].Name, d.Steps[2].Name
	k := sagatest.New(t, d, order)
	k.ExpectSent(sagatest.Request(stockStep))
	k.Reply(stockStep, saga.StepSucceeded).ExpectSent(sagatest.Request(credit))
	k.Reply(credit, saga.StepSucceeded).ExpectSent(sagatest.Request(payment))
	k.Reply(payment, saga.StepFailed).ExpectSent(sagatest.Compensation(credit)).ExpectStatus(saga.StatusAborting)
	k.Reply(credit, saga.StepCompensated).ExpectSent(sagatest.Compensation(stockStep))
	k.Reply(stockStep, saga.StepCompensated).ExpectSent().ExpectStatus(saga.StatusAborted)
}

// The example end to end, through the real relays, broker and Postgres: the
// shop and the stock service beside sagabox's customer and payment
// services, unchanged.
func TestStockedOrders(t *testing.T) {
	t.Parallel()
	sys := start(t)
	ctx := context.Background()
	customer := sys.newCustomer(100_00)
	sys.addStock("tea", 5)

	t.Run("the stock, the credit and the payment are taken", func(t *testing.T) {
		s := sys.await(sys.place(customer, "tea", 2, 30_00, "4111111111111111"), saga.StatusSucceeded)
		for _, st := range shop.Definition().Steps {
			if s.StepStatus[st.Name] != saga.StepSucceeded {
				t.Errorf("step %s: %s, want %s", st.Name, s.StepStatus[st.Name], saga.StepSucceeded)
			}
		}
		sys.expect(3, 70_00)
		sys.expectRecord(sys.stock, inventory.Reservation().Name, s.ID, participant.StatusDone)
	})
	t.Run("out of stock: nothing else is asked", func(t *testing.T) {
		s := sys.await(sys.place(customer, "tea", 4, 10_00, "4111111111111111"), saga.StatusAborted)
		sys.expect(3, 70_00)
		sys.expectRecord(sys.stock, inventory.Reservation().Name, s.ID, participant.StatusRefused)
		if _, err := sys.customer.StepRecord(ctx, contracts.CreditApproval().Name, s.ID); api.StatusOf(err) != http.StatusNotFound {
			t.Errorf("credit-approval record of a saga refused its stock: %v, want 404", err)
		}
	})
	t.Run("a refused payment gives the stock and the credit back", func(t *testing.T) {
		s := sys.await(sys.place(customer, "tea", 1, 20_00, "4000000000009999"), saga.StatusAborted)
		sys.expect(3, 70_00)
		sys.expectRecord(sys.stock, inventory.Reservation().Name, s.ID, participant.StatusUndone)
		sys.expectRecord(sys.customer, contracts.CreditApproval().Name, s.ID, participant.StatusUndone)
		sys.expectRecord(sys.payment, contracts.Payment().Name, s.ID, participant.StatusRefused)
	})
	t.Run("a bad order is refused and starts nothing", func(t *testing.T) {
		before := sys.sagas()
		for _, body := range []string{`{`, `{"customerId":1,"sku":"tea","quantity":0,"paymentDue":100,"creditCardNo":"4111"}`,
			`{"customerId":1,"sku":"","quantity":1,"paymentDue":100,"creditCardNo":"4111"}`} {
			resp, err := http.Post(sys.shopURL+"/orders", "application/json", bytes.NewBufferString(body))
			if err != nil {
				t.Fatal(err)
			}
			var e struct{ Error string }
			err = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || err != nil || e.Error == "" {
				t.Errorf("POST /orders %s: %d %q (%v), want 400 with an error", body, resp.StatusCode, e.Error, err)
			}
		}
		if after := sys.sagas(); after != before {
			t.Errorf("%d sagas after bad orders, want %d", after, before)
		}
	})
	t.Run("the stock service lists its step", func(t *testing.T) {
		steps, err := sys.stock.Steps(ctx)
		if err != nil || len(steps) != 1 || steps[0].Name != inventory.Reservation().Name {
			t.Errorf("GET /steps: %v, %v", steps, err)
		}
	})
}

const adminToken = "example-admin-token-0123456789"

// system is the example running: the shop, the stock service, sagabox's
// customer and payment services, their relays, a broker.
type system struct {
	t                 *testing.T
	dbs               map[string]*pgxpool.Pool
	shopURL           string
	shop, stock       api.Client // the shop with the operator's token
	customer, payment api.Client
	customerID        int64  // newCustomer's
	sku               string // addStock's
}

func start(t *testing.T) *system {
	t.Helper()
	root := testenv.RepoRoot(t)
	connectors := load(t, filepath.Join(root, "examples", "inventory", "connectors"))
	for _, c := range load(t, filepath.Join(root, "debezium", "connectors")) {
		if c.DBName == "customerdb" || c.DBName == "paymentdb" {
			connectors = append(connectors, c)
		}
	}
	specs := []stack.ServiceSpec{
		{Name: "shop", Database: "shopdb", Service: shop.Service, Migrations: shop.Service().Migrations, CardKeys: true},
		{Name: "stock", Database: "stockdb", Service: stock.Service, Migrations: stock.Service().Migrations},
	}
	for _, name := range []string{"customer", "payment"} {
		c, err := registry.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, stack.ServiceSpec{Name: c.Name, Database: c.Database, Service: c.Service,
			Migrations: c.Migrations, CardKeys: c.CardKeys})
	}
	brokerAddr, _ := testenv.Kafka(t)
	s := &system{t: t, dbs: map[string]*pgxpool.Pool{}}
	dbURLs, addrs, urls := map[string]string{}, map[string]string{}, map[string]string{}
	for _, spec := range specs {
		dbURLs[spec.Database] = testenv.Database(t, nil)
		s.dbs[spec.Name] = testenv.Pool(t, dbURLs[spec.Database])
		port, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[spec.Name] = "127.0.0.1:" + strconv.Itoa(port)
		urls[spec.Name] = "http://" + addrs[spec.Name]
	}
	keys, _ := testenv.CardKeys(t)
	st, err := stack.Start(context.Background(), stack.Config{
		Services: specs, Connectors: connectors, DatabaseURLs: dbURLs, Brokers: []string{brokerAddr},
		HTTPAddrs: addrs, SlotSuffix: "_" + testenv.Name("x"), CardKeys: keys,
		Env:    func(k string) string { return map[string]string{"ADMIN_TOKEN": adminToken}[k] },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start the example: %v", err)
	}
	t.Cleanup(st.Close)
	check := apitest.Must(t)
	s.shopURL = urls["shop"]
	s.shop = api.Client{Name: "shop", URLs: []string{urls["shop"]}, Token: adminToken}
	s.stock = api.Client{Name: "stock", URLs: []string{urls["stock"]}}
	s.customer = api.Client{Name: "customer", URLs: []string{urls["customer"]}, Check: check.Check}
	s.payment = api.Client{Name: "payment", URLs: []string{urls["payment"]}, Check: check.Check}
	for _, c := range []api.Client{s.shop, s.stock, s.customer, s.payment} {
		testenv.Eventually(t, 90*time.Second, func() bool {
			if exited, err := st.Exited(c.Name); exited {
				t.Fatalf("%s exited: %v", c.Name, err)
			}
			return !slices.Contains(c.Health(context.Background()), false)
		}, "%s never became healthy", c.Name)
	}
	return s
}

func load(t *testing.T, dir string) []relay.Connector {
	t.Helper()
	cs, err := relay.LoadConnectors(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func addStock(t *testing.T, db *pgxpool.Pool, sku string, onHand int64) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO stock (sku, on_hand) VALUES ($1, $2)`, sku, onHand); err != nil {
		t.Fatal(err)
	}
}

func stockOf(t *testing.T, db *pgxpool.Pool, sku string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), `SELECT on_hand FROM stock WHERE sku = $1`, sku).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *system) addStock(sku string, onHand int64) {
	s.sku = sku
	addStock(s.t, s.dbs["stock"], sku, onHand)
}

func (s *system) newCustomer(limit int64) int64 {
	s.customerID = 1_000_000 + rand.Int64N(1_000_000_000)
	const q = `INSERT INTO customer (id, open_limit) VALUES ($1, $2)`
	if _, err := s.dbs["customer"].Exec(context.Background(), q, s.customerID, limit); err != nil {
		s.t.Fatal(err)
	}
	return s.customerID
}

// place posts an order to the shop and returns its saga.
func (s *system) place(customerID int64, sku string, quantity, due int64, number string) uuid.UUID {
	s.t.Helper()
	var placed shop.Placed
	o := shop.Order{CustomerID: customerID, SKU: sku, Quantity: quantity, PaymentDue: due, Card: number}
	if _, err := s.shop.Do(context.Background(), http.MethodPost, "/orders", o, &placed); err != nil {
		s.t.Fatalf("place %+v: %v", o, err)
	}
	if placed.OrderID <= 0 || placed.SagaID == uuid.Nil {
		s.t.Fatalf("placed %+v", placed)
	}
	return placed.SagaID
}

// await waits for saga id to end, and fails unless it ended with want.
func (s *system) await(id uuid.UUID, want saga.Status) sagaapi.Saga {
	s.t.Helper()
	var d sagaapi.Detail
	testenv.Eventually(s.t, 60*time.Second, func() bool {
		var err error
		d, err = s.shop.Saga(context.Background(), id)
		if err != nil {
			s.t.Fatalf("saga %s: %v", id, err)
		}
		return d.Saga.Status.Done()
	}, "saga %s never ended", id)
	if d.Saga.Status != want {
		s.t.Fatalf("saga %s ended %s, want %s: %+v", id, d.Saga.Status, want, d.History)
	}
	return d.Saga
}

// expect checks the item's stock and the customer's open limit.
func (s *system) expect(onHand, limit int64) {
	s.t.Helper()
	if got := stockOf(s.t, s.dbs["stock"], s.sku); got != onHand {
		s.t.Errorf("%s on hand: %d, want %d", s.sku, got, onHand)
	}
	c, err := s.customer.Customer(context.Background(), s.customerID)
	if err != nil || c.OpenLimit != limit {
		s.t.Errorf("customer %d: %+v, %v; want open limit %d", s.customerID, c, err, limit)
	}
}

func (s *system) expectRecord(c api.Client, step string, id uuid.UUID, want string) {
	s.t.Helper()
	r, err := c.StepRecord(context.Background(), step, id)
	if err != nil || r.Status != want {
		s.t.Errorf("%s: %s of saga %s: %+v, %v; want %s", c.Name, step, id, r, err, want)
	}
}

// sagas counts the shop's sagas.
func (s *system) sagas() int64 {
	s.t.Helper()
	var n int64
	if err := s.dbs["shop"].QueryRow(context.Background(), `SELECT count(*) FROM sagastate`).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}
