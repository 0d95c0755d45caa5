package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/card"
)

// finder looks for patterns in what it is shown and notes where it saw
// them. Patterns are found by their first four bytes, so that scanning a
// data directory costs a few passes, not one per pattern.
type finder struct {
	byPrefix map[string][]string
	found    map[string][]string // pattern → places
	looked   int                 // bytes
}

func newFinder(patterns []string) *finder {
	f := &finder{byPrefix: map[string][]string{}, found: map[string][]string{}}
	for _, p := range patterns {
		f.byPrefix[p[:4]] = append(f.byPrefix[p[:4]], p)
	}
	return f
}

func (f *finder) look(where string, data []byte) {
	f.looked += len(data)
	for prefix, patterns := range f.byPrefix {
		for rest, off := data, 0; ; {
			i := bytes.Index(rest, []byte(prefix))
			if i < 0 {
				break
			}
			for _, p := range patterns {
				if bytes.HasPrefix(rest[i:], []byte(p)) && len(f.found[p]) < 5 {
					f.found[p] = append(f.found[p], fmt.Sprintf("%s (at byte %d)", where, off+i))
				}
			}
			rest, off = rest[i+1:], off+i+1
		}
	}
}

// scanDatabases shows the finder every row of every table of every
// database of the cluster on port, as text.
func scanDatabases(t *testing.T, port int, password string, f *finder) {
	t.Helper()
	ctx := context.Background()
	connect := func(db string) *pgx.Conn {
		conn, err := pgx.Connect(ctx, pgcluster.AdminURL(port, password, db))
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	admin := connect("postgres")
	defer admin.Close(ctx)
	rows, _ := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1`)
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	tables := 0
	for _, db := range dbs {
		conn := connect(db)
		rows, _ := conn.Query(ctx, `SELECT ARRAY[table_schema::text, table_name::text] FROM information_schema.tables
			WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
		names, err := pgx.CollectRows(rows, pgx.RowTo[pgx.Identifier])
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			rows, _ := conn.Query(ctx, `SELECT t::text FROM `+name.Sanitize()+` t`)
			texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatalf("read %s.%s: %v", db, name.Sanitize(), err)
			}
			f.look(db+"."+strings.Join(name, "."), []byte(strings.Join(texts, "\n")))
			tables++
		}
		conn.Close(ctx)
	}
	t.Logf("scanned %d tables of %d databases %v", tables, len(dbs), dbs)
	if tables < 15 {
		t.Errorf("only %d tables scanned: the three service databases alone have more", tables)
	}
}

// scanTopics shows the finder the key, value and headers of every record
// of every topic of the broker at addr.
func scanTopics(t *testing.T, addr string, f *finder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics.Names()...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]kgo.Offset{}
	remaining := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset == 0 {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic], remaining[o.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		want[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		remaining[o.Topic][o.Partition] = o.Offset
	})
	reader, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(want))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	records := 0
	for len(remaining) > 0 {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read every record: timed out with %v left", remaining)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			records++
			where := fmt.Sprintf("topic %s/%d@%d", r.Topic, r.Partition, r.Offset)
			f.look(where+" key", r.Key)
			f.look(where+" value", r.Value)
			for _, h := range r.Headers {
				f.look(where+" header "+h.Key, append([]byte(h.Key+"="), h.Value...))
			}
			if p := remaining[r.Topic]; p != nil && r.Offset+1 >= p[r.Partition] {
				delete(p, r.Partition)
				if len(p) == 0 {
					delete(remaining, r.Topic)
				}
			}
		})
	}
	t.Logf("scanned %d records of %d topics %v", records, len(want), topics.Names())
}

// scanFiles shows the finder every file under dir, byte for byte: the
// logs, Postgres's data and WAL, the broker's log segments.
func scanFiles(t *testing.T, dir string, f *finder) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // files of a running system come and go
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		f.look(path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scanned %d files under %s", files, dir)
}

// Card numbers are nowhere in clear outside the payment service's memory.
// After the three reference scenarios and a load of orders with known card
// numbers (with and without dashes; accepted, refused by the payment
// service, rejected for an unknown customer), none of those numbers, with
// or without dashes, is in any column of any table of any database, any
// record of any topic, any line any component logged (everything `sagabox
// up` and its children printed, and Postgres's server log), or any file of
// the data directory (Postgres's data files and WAL, the broker's
// segments). No log line holds key material either. A control number put
// in one place of each kind is found by each scan: the scans can see.
func TestNoCardNumberInClear(t *testing.T) {
	s := startStack(t, 1)
	ctx := context.Background()
	orderDB, customerDB, paymentDB := s.db("orderdb"), s.db("customerdb"), s.db("paymentdb")
	initial := seedCustomers(t, customerDB, 1_000_000)

	var numbers []string
	for _, f := range []string{"place-order.json", "place-invalid-order1.json", "place-invalid-order2.json"} {
		body, err := os.ReadFile(filepath.Join("..", "..", "requests", f))
		if err != nil {
			t.Fatal(err)
		}
		var o order
		if err := json.Unmarshal(body, &o); err != nil {
			t.Fatal(err)
		}
		if place(s.orderURLs[0], o) == 0 {
			t.Fatalf("%s refused", f)
		}
		numbers = append(numbers, o.Card)
	}
	for i := range 40 {
		last := fmt.Sprintf("%04d", 1000+i)
		if i%5 == 0 {
			last = "9999" // refused
		}
		digits := fmt.Sprintf("4929%04d%04d%s", 7310+i, 2468+3*i, last)
		o := order{CustomerID: int64(firstCustomer + i%customers), ItemID: 1, Quantity: 1, PaymentDue: 100 + int64(i), Card: digits}
		if i%2 == 0 {
			o.Card = dashed(digits)
		}
		if i%7 == 3 {
			o.CustomerID = unknownCustomer
		}
		if place(s.orderURLs[0], o) == 0 {
			t.Fatalf("order %d refused", i)
		}
		numbers = append(numbers, digits)
	}
	var l ledger
	testenv.Eventually(t, settleBound, func() bool {
		var err error
		l, err = readLedger(ctx, orderDB, customerDB, paymentDB)
		return err == nil && len(l.orders) == 43 && len(l.unsettled()) == 0
	}, "sagas still running: %v", &l)
	for _, v := range l.violations(initial) {
		t.Errorf("violation: %s", v)
	}
	if accepted, rejected, _ := l.counts(); accepted < 20 || rejected < 10 {
		t.Errorf("accepted %d, rejected %d: the load must take every path", accepted, rejected)
	}

	// Every number with and without dashes, and a control number of each
	// form put where each scan looks.
	var patterns []string
	for _, n := range numbers {
		plain := strings.ReplaceAll(n, "-", "")
		patterns = append(patterns, plain, dashed(plain))
	}
	controls := map[string]string{"db": "4929-0000-0000-0001", "topic": "4929000000000002", "file": "4929-0000-0000-0003"}
	if _, err := orderDB.Exec(ctx, `CREATE TABLE scan_control (v text); INSERT INTO scan_control VALUES ('`+controls["db"]+`')`); err != nil {
		t.Fatal(err)
	}
	brokerAddr := "127.0.0.1:" + s.flag("-kafka-port")
	produceControl(t, brokerAddr, controls["topic"])
	if err := os.WriteFile(filepath.Join(s.dataDir, "scan-control"), []byte(controls["file"]), 0o600); err != nil {
		t.Fatal(err)
	}
	patterns = append(patterns, slices.Collect(maps.Values(controls))...)
	slices.Sort(patterns)
	patterns = slices.Compact(patterns)

	scans := map[string]*finder{"db": newFinder(patterns), "topic": newFinder(patterns), "file": newFinder(patterns)}
	pw, err := pgcluster.ReadPassword(filepath.Join(s.dataDir, "postgres-password"))
	if err != nil {
		t.Fatal(err)
	}
	scanDatabases(t, s.pgPort, pw, scans["db"])
	scanTopics(t, brokerAddr, scans["topic"])
	s.logs.Sync()
	scanFiles(t, s.dataDir, scans["file"])
	scanFiles(t, filepath.Dir(s.logs.Name()), scans["file"]) // every line of every component
	for kind, f := range scans {
		control := controls[kind]
		if len(f.found[control]) == 0 {
			t.Errorf("%s scan (%d bytes) did not find its control number %s: it cannot see", kind, f.looked, control)
		}
		for p, where := range f.found {
			if !slices.Contains(slices.Collect(maps.Values(controls)), p) {
				t.Errorf("card number %s found in clear by the %s scan: %v", p, kind, where)
			}
		}
	}

	// No key material in any log.
	keyFile, err := os.ReadFile(filepath.Join(s.dataDir, "card-keys"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := card.ParseKeys(string(keyFile))
	if err != nil || keys.Empty() {
		t.Fatalf("the data directory's card keys: %v", err)
	}
	var secrets []string
	for line := range strings.Lines(string(keyFile)) {
		if _, secret, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(line, "#") {
			secrets = append(secrets, secret[:12], secret[len(secret)-13:])
		}
	}
	logs := newFinder(secrets)
	scanFiles(t, filepath.Dir(s.logs.Name()), logs)
	if pgLog, err := os.ReadFile(filepath.Join(s.dataDir, "pg", "server.log")); err == nil {
		logs.look("postgres server.log", pgLog)
	}
	for p, where := range logs.found {
		t.Errorf("card key material %s… logged: %v", p[:4], where)
	}
	if logged, _ := os.ReadFile(s.logs.Name()); !bytes.Contains(logged, []byte(`"card_keys":["k1"]`)) {
		t.Error(`no service logged the ids of its card keys ("card_keys":["k1"]): the log scan may be looking at the wrong file`)
	}
}

// dashed writes 16 digits in groups of four.
func dashed(digits string) string {
	if len(digits) != 16 {
		return digits
	}
	return digits[:4] + "-" + digits[4:8] + "-" + digits[8:12] + "-" + digits[12:]
}

// produceControl writes value as one record of a topic of its own.
func produceControl(t *testing.T, addr, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "scan-control"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "scan-control", Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// flag returns the value of `sagabox up` flag name.
func (s *stack) flag(name string) string {
	i := slices.Index(s.args, name)
	if i < 0 || i+1 >= len(s.args) {
		s.t.Fatalf("sagabox up has no flag %s", name)
	}
	return s.args[i+1]
}
