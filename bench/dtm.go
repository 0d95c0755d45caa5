package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
)

// DTM, measured by `make bench` in the same run as sagabox, on a Postgres
// cluster configured as sagabox's (fsync on, wal_level=logical: the same
// sagabox.conf), with the same workload: customers 100000–100999 with a
// limit no order exhausts and customer 456 with 50,000 cents; saga i for
// customer 100000 + a random one of the thousand (sagabox's load draws its
// customers the same way); the order inserted PENDING, the credit approved
// by a conditional UPDATE, the payment inserted, the order set ACCEPTED or
// REJECTED once the result is known; every step inside DTM's barrier; the
// saga submitted in DTM's recommended mode, its result awaited
// (WaitResult). DTM's server and dtmbench (bench/dtm) are built from a
// module of their own, so DTM's dependencies stay out of sagabox's.

// dtmResult is DTM's row of the comparison.
type dtmResult struct {
	sagasPerSec map[int]float64 // by clients
	warm, hot   latencyResult   // at the fixed rate: after a warm-up, right after saturation
	cpuMS       float64         // per saga, every process, at the last saturation run
	components  []componentResult
	check       string // what the correctness check found ("ok" when nothing)
}

// latencyResult is created → ended of a fixed-rate run.
type latencyResult struct {
	rate                 float64
	p50, p99, p999, maxv float64
	hops                 []hopLatency // sagabox's: each message's way
	background           background   // sagabox's: what the databases did besides
}

// dtmSystem is DTM, its participants and their Postgres cluster.
type dtmSystem struct {
	pg                     *pgcluster.Cluster
	procs                  map[string]*exec.Cmd
	bench                  string // the dtmbench binary
	dtmAPI, participants   string
	orderURL               string
	orderDB, customer, pay *pgxpool.Pool
}

func measureDTM(ctx context.Context, o options) (dtmResult, error) {
	r := dtmResult{sagasPerSec: map[int]float64{}}
	d, err := startDTM(ctx, o)
	if err != nil {
		return r, err
	}
	defer d.stop()
	fmt.Fprintln(os.Stderr, "bench: dtm: warm-up")
	if err := d.load(ctx, "warm", "-clients", "8", "-orders", "300"); err != nil {
		return r, err
	}
	if r.warm, err = d.latency(ctx, o, "warm-rate"); err != nil {
		return r, err
	}
	for _, clients := range o.clients {
		fmt.Fprintf(os.Stderr, "bench: dtm: %d orders from %d clients\n", o.orders, clients)
		pids := d.pids()
		before, loadBefore := cpuSnapshot(pids), loadTicks
		from := time.Now()
		if err := d.load(ctx, "sat"+strconv.Itoa(clients), "-clients", strconv.Itoa(clients), "-orders", strconv.Itoa(o.orders)); err != nil {
			return r, err
		}
		after := cpuSnapshot(pids)
		after["order (dtmbench load)"], before["order (dtmbench load)"] = loadTicks, loadBefore
		n, secs, err := ended(ctx, d.orderDB, from)
		if err != nil {
			return r, err
		}
		r.sagasPerSec[clients] = float64(n) / secs
		r.components, r.cpuMS = nil, 0
		for name, t := range after {
			ms := float64(t-before[name]) * 1000 / clockTicks / float64(n)
			r.components = append(r.components, componentResult{name: name, cpuMS: ms})
			r.cpuMS += ms
		}
		sort.Slice(r.components, func(i, j int) bool { return r.components[i].cpuMS > r.components[j].cpuMS })
	}
	if r.hot, err = d.latency(ctx, o, "hot-rate"); err != nil {
		return r, err
	}
	r.check, err = d.check(ctx)
	return r, err
}

// ended counts the orders created since from that have ended, and the
// seconds from the first created to the last ended.
func ended(ctx context.Context, db *pgxpool.Pool, from time.Time) (int, float64, error) {
	var (
		n    int
		secs float64
	)
	err := db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM max(updated_at) - min(created_at)), 0)
		FROM purchaseorder WHERE created_at >= $1 AND status <> 'PENDING'`, from).Scan(&n, &secs)
	if err == nil && (n == 0 || secs <= 0) {
		err = fmt.Errorf("no order ended")
	}
	return n, secs, err
}

func startDTM(ctx context.Context, o options) (*dtmSystem, error) {
	dir := filepath.Join(o.work, "dtm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	server, bench := filepath.Join(dir, "dtm"), filepath.Join(dir, "dtmbench")
	fmt.Fprintln(os.Stderr, "bench: dtm: building DTM v1.19.0 and dtmbench (bench/dtm, a module of its own)")
	for _, b := range [][]string{{"-o", server, "github.com/dtm-labs/dtm"}, {"-o", bench, "./dtmbench"}} {
		cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, b...)...)
		cmd.Dir = "dtm"
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build %s: %w", b[2], err)
		}
	}
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/dtm-labs/dtm")
	list.Dir = "dtm"
	modDir, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("find DTM's sources: %w", err)
	}
	sqls := filepath.Join(strings.TrimSpace(string(modDir)), "sqls")
	port, err := pgcluster.FreePort()
	if err != nil {
		return nil, err
	}
	pg, err := pgcluster.Start(ctx, pgcluster.Config{Dir: filepath.Join(dir, "pg"), Port: port, Durable: true})
	if err != nil {
		return nil, err
	}
	d := &dtmSystem{pg: pg, procs: map[string]*exec.Cmd{}, bench: bench}
	ok := false
	defer func() {
		if !ok {
			d.stop()
		}
	}()
	pw, err := pgcluster.ReadPassword(pg.PasswordFile())
	if err != nil {
		return nil, err
	}
	schema := map[string][]string{
		"dtm": {file(filepath.Join(sqls, "dtmsvr.storage.postgres.sql"))},
		"orderdb": {`CREATE TABLE purchaseorder (id bigserial PRIMARY KEY, gid text NOT NULL UNIQUE, customer_id bigint NOT NULL,
			amount bigint NOT NULL, card_last4 text NOT NULL, status text NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED')),
			created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`},
		"customerdb": {`CREATE TABLE customer (id bigint PRIMARY KEY, open_limit bigint NOT NULL)`,
			`INSERT INTO customer SELECT g, 1000000000000 FROM generate_series(100000, 100999) g`,
			`INSERT INTO customer VALUES (456, 50000)`, file(filepath.Join(sqls, "dtmcli.barrier.postgres.sql"))},
		"paymentdb": {`CREATE TABLE payment (id bigserial PRIMARY KEY, gid text NOT NULL UNIQUE, order_id bigint NOT NULL,
			customer_id bigint NOT NULL, amount bigint NOT NULL, card_last4 text NOT NULL, status text NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`, file(filepath.Join(sqls, "dtmcli.barrier.postgres.sql"))},
	}
	urls := map[string]string{}
	for db, stmts := range schema {
		if err := pg.EnsureDatabase(ctx, db, "bench", pw); err != nil {
			return nil, err
		}
		urls[db] = pgcluster.AdminURL(port, pw, db)
		pool, err := pgxpool.New(ctx, urls[db])
		if err != nil {
			return nil, err
		}
		for _, s := range stmts {
			if _, err := pool.Exec(ctx, s); err != nil {
				pool.Close()
				return nil, fmt.Errorf("%s: %w", db, err)
			}
		}
		pool.Close()
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = pgcluster.FreePort(); err != nil {
			return nil, err
		}
	}
	d.dtmAPI = fmt.Sprintf("http://127.0.0.1:%d/api/dtmsvr", ports[0])
	d.participants = fmt.Sprintf("http://127.0.0.1:%d", ports[3])
	d.orderURL = urls["orderdb"]
	// DTM reads its configuration from the environment (Store.Driver →
	// STORE_DRIVER); the rest is its default: branch statuses written
	// asynchronously by one goroutine.
	dtmEnv := []string{"STORE_DRIVER=postgres", "STORE_HOST=127.0.0.1", "STORE_PORT=" + strconv.Itoa(port), "STORE_USER=postgres",
		"STORE_PASSWORD=" + pw, "STORE_DB=dtm", "STORE_SCHEMA=public", "HTTP_PORT=" + strconv.Itoa(ports[0]),
		"GRPC_PORT=" + strconv.Itoa(ports[1]), "JSON_RPC_PORT=" + strconv.Itoa(ports[2]), "LOG_LEVEL=warn"}
	if err := d.start("dtm", dtmEnv, server); err != nil {
		return nil, err
	}
	if err := d.start("participants", nil, bench, "serve", "-addr", fmt.Sprintf("127.0.0.1:%d", ports[3]),
		"-customer-db", urls["customerdb"], "-payment-db", urls["paymentdb"]); err != nil {
		return nil, err
	}
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[3])} {
		if err := awaitPort(ctx, addr, time.Minute); err != nil {
			return nil, err
		}
	}
	for db, dst := range map[string]**pgxpool.Pool{"orderdb": &d.orderDB, "customerdb": &d.customer, "paymentdb": &d.pay} {
		if *dst, err = pgxpool.New(ctx, urls[db]); err != nil {
			return nil, err
		}
	}
	ok = true
	return d, nil
}

func file(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "SELECT 'missing " + path + "'::int" // fails with the path
	}
	return string(b)
}

func awaitPort(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never listened: %w", addr, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (d *dtmSystem) start(name string, env []string, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logs, err := os.Create(filepath.Join(filepath.Dir(bin), name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	d.procs[name] = cmd
	return nil
}

// pids are the processes whose CPU counts: DTM, the participants, the
// order service's part (dtmbench load, started later: its CPU is counted
// from its own accounting) and Postgres.
func (d *dtmSystem) pids() map[string]int {
	pids := map[string]int{}
	for name, c := range d.procs {
		pids[name] = c.Process.Pid
	}
	b, err := os.ReadFile(filepath.Join(d.pg.Dir(), "postmaster.pid"))
	if err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil {
			pids["postgres"] = pid
		}
	}
	return pids
}

// load runs dtmbench load with args; its CPU (the order service's part) is
// added to the "order (dtmbench load)" component of the next snapshot.
func (d *dtmSystem) load(ctx context.Context, prefix string, args ...string) error {
	cmd := exec.CommandContext(ctx, d.bench, append([]string{"load", "-dtm", d.dtmAPI, "-participants", d.participants,
		"-order-db", d.orderURL, "-gid-prefix", prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dtmbench load %v: %w", args, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		loadTicks += (ru.Utime.Sec+ru.Stime.Sec)*clockTicks + (int64(ru.Utime.Usec)+int64(ru.Stime.Usec))*clockTicks/1e6
	}
	return nil
}

// loadTicks is the CPU the dtmbench load processes used so far, in clock
// ticks: the order service's part of DTM's run.
var loadTicks int64

// latency runs DTM at o.rate (160 sagas/s unless -latency-rate says
// otherwise) for o.latencyFor.
func (d *dtmSystem) latency(ctx context.Context, o options, prefix string) (latencyResult, error) {
	rate := o.rate
	fmt.Fprintf(os.Stderr, "bench: dtm: %.0f orders/s for %s\n", rate, o.latencyFor)
	from := time.Now()
	if err := d.load(ctx, prefix, "-rate", strconv.FormatFloat(rate, 'f', 1, 64), "-for", o.latencyFor.String()); err != nil {
		return latencyResult{}, err
	}
	rows, err := d.orderDB.Query(ctx, `SELECT extract(epoch FROM updated_at - created_at) * 1000 FROM purchaseorder
		WHERE created_at >= $1 AND status <> 'PENDING'`, from)
	if err != nil {
		return latencyResult{}, err
	}
	var ms []float64
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			return latencyResult{}, err
		}
		ms = append(ms, v)
	}
	if err := rows.Err(); err != nil {
		return latencyResult{}, err
	}
	sort.Float64s(ms)
	l := latencyResult{rate: rate, p50: percentile(ms, .5), p99: percentile(ms, .99), p999: percentile(ms, .999)}
	if len(ms) > 0 {
		l.maxv = ms[len(ms)-1]
	}
	return l, nil
}

// check is the correctness check of DTM's run: nothing PENDING, every
// ACCEPTED order one COMPLETED payment of its amount, the customers' money
// adding up.
func (d *dtmSystem) check(ctx context.Context) (string, error) {
	var pending, accepted, used int64
	if err := d.orderDB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE status = 'ACCEPTED'),
		coalesce(sum(amount) FILTER (WHERE status = 'ACCEPTED'), 0) FROM purchaseorder`).Scan(&pending, &accepted, &used); err != nil {
		return "", err
	}
	var paid, paidSum int64
	if err := d.pay.QueryRow(ctx, `SELECT count(*), coalesce(sum(amount), 0) FROM payment WHERE status = 'COMPLETED'`).Scan(&paid, &paidSum); err != nil {
		return "", err
	}
	var taken int64
	if err := d.customer.QueryRow(ctx, `SELECT sum(1000000000000 - open_limit) FROM customer WHERE id BETWEEN 100000 AND 100999`).Scan(&taken); err != nil {
		return "", err
	}
	var problems []string
	if pending > 0 {
		problems = append(problems, fmt.Sprintf("%d orders PENDING", pending))
	}
	if paid != accepted || paidSum != used {
		problems = append(problems, fmt.Sprintf("%d ACCEPTED orders (%d cents), %d COMPLETED payments (%d cents)", accepted, used, paid, paidSum))
	}
	if taken != used {
		problems = append(problems, fmt.Sprintf("customers gave %d cents, ACCEPTED orders hold %d", taken, used))
	}
	if len(problems) == 0 {
		return "ok", nil
	}
	return strings.Join(problems, "; "), nil
}

func (d *dtmSystem) stop() {
	for _, c := range d.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
		}
	}
	for _, p := range []*pgxpool.Pool{d.orderDB, d.customer, d.pay} {
		if p != nil {
			p.Close()
		}
	}
	_ = d.pg.Stop(context.Background())
}
