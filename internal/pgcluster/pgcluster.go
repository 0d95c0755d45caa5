// Package pgcluster runs a dedicated local PostgreSQL cluster from the
// machine's own PostgreSQL binaries: the no-Docker path of `sagabox up` and the
// database the tests use. The cluster is configured for logical replication
// (wal_level=logical), which the outbox relay needs.
//
// Access: the server listens on 127.0.0.1 only and asks every TCP
// connection for a password (scram-sha-256); the superuser's is generated
// into a file readable by its owner only (Config.PasswordFile). Its Unix
// socket lives in the data directory, which only the server's OS user (and
// root) can enter; this package administers the cluster through it. Each
// role EnsureDatabase creates can connect to its own database only.
//
// PostgreSQL refuses to run as root; when the current user is root every
// server command runs as the "postgres" OS user through runuser.
package pgcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config describes a local cluster.
type Config struct {
	// Dir is the data directory; it is created by initdb when empty.
	Dir string
	// Port the server listens on (127.0.0.1 only). Default 54320.
	Port int
	// Durable keeps fsync on. Tests turn it off: they never survive a host
	// crash, and it makes commits an order of magnitude cheaper.
	Durable bool
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
	// PasswordFile holds the superuser's password (mode 0600), generated
	// on first start. Default: DefaultPasswordFile(Dir).
	PasswordFile string
}

// DefaultPasswordFile is where the superuser's password of the cluster in
// data directory dir is kept unless Config says otherwise: beside it, in
// "postgres-password" (for `sagabox up`, .data/postgres-password).
func DefaultPasswordFile(dir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(dir)), "postgres-password")
}

// ReadPassword reads a password file as Start writes it.
func ReadPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read postgres password: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("read postgres password: %s is empty", file)
	}
	return pw, nil
}

// Cluster is a running local PostgreSQL server owned by this process.
type Cluster struct {
	cfg      Config
	binDir   string
	asUser   string // OS user the server runs as ("" = current user)
	log      *slog.Logger
	password string // the superuser's, once Start has it
}

// Start initialises the data directory when needed and starts the server,
// waiting until it accepts connections. A server already running on that
// data directory (for example after a crash of its parent) is reused.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Port == 0 {
		cfg.Port = 54320
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	cfg.Dir = dir
	if cfg.PasswordFile == "" {
		cfg.PasswordFile = DefaultPasswordFile(dir)
	}
	c, err := newCluster(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.writeConf(); err != nil {
		return nil, err
	}
	if err := c.removeStalePid(ctx); err != nil {
		return nil, err
	}
	if c.running(ctx) {
		c.log.InfoContext(ctx, "postgres already running", "dir", dir, "port", cfg.Port)
		// A server started by an older version may still trust every
		// connection: it reads the rewritten pg_hba.conf now.
		if _, err := c.run(ctx, "pg_ctl", "-D", dir, "reload"); err != nil {
			return nil, fmt.Errorf("reload postgres: %w", err)
		}
	} else {
		logFile := filepath.Join(dir, "server.log")
		if _, err := c.run(ctx, "pg_ctl", "-D", dir, "-l", logFile, "-w", "-t", "60", "-o", "-p "+strconv.Itoa(cfg.Port), "start"); err != nil {
			return nil, fmt.Errorf("start postgres (log %s): %w", logFile, err)
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, c.setPassword(ctx)
}

// setPassword gives the superuser the password of Config.PasswordFile,
// generating the file (0600) when missing.
func (c *Cluster) setPassword(ctx context.Context) error {
	pw, err := ReadPassword(c.cfg.PasswordFile)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 18)
		if _, err := rand.Read(raw); err != nil {
			return fmt.Errorf("generate postgres password: %w", err)
		}
		pw = hex.EncodeToString(raw)
		if err := os.MkdirAll(filepath.Dir(c.cfg.PasswordFile), 0o755); err != nil {
			return fmt.Errorf("write postgres password: %w", err)
		}
		if err := os.WriteFile(c.cfg.PasswordFile, []byte(pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("write postgres password: %w", err)
		}
	} else if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.socketURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(pw)); err != nil {
		return fmt.Errorf("set postgres password: %w", err)
	}
	// Only the roles a database is granted to may connect to it (see
	// EnsureDatabase); superusers bypass the check.
	if _, err := conn.Exec(ctx, "REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC"); err != nil {
		return fmt.Errorf("restrict the postgres database: %w", err)
	}
	c.password = pw
	return nil
}

// removeStalePid removes a postmaster.pid left by a server that was killed
// (or by a machine that lost power) when the pid it names is not a postgres
// process any more. Postgres itself only checks that the pid is alive, and
// after a reboot that pid may well belong to another program: the server
// would then refuse to start until the file is removed by hand.
func (c *Cluster) removeStalePid(ctx context.Context) error {
	path := filepath.Join(c.cfg.Dir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err == nil && pid > 0 {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			return nil // a live server: pg_ctl status decides
		}
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	c.log.WarnContext(ctx, "removed a stale postmaster.pid: the server that wrote it is gone (killed or a crash)",
		"path", path, "pid", first)
	return nil
}

func newCluster(cfg Config) (*Cluster, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, binDir: bin, log: cfg.Logger}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
	}
	return c, nil
}

// StopDir stops the server running on data directory dir, if there is one
// (for example left behind by a killed parent).
func StopDir(ctx context.Context, dir string) error {
	c, err := newCluster(Config{Dir: dir, Logger: slog.Default()})
	if err != nil {
		return err
	}
	if !c.running(ctx) {
		return nil
	}
	return c.Stop(ctx)
}

// CrashDir stops the server running on data directory dir, if there is one,
// in immediate mode (see Crash).
func CrashDir(ctx context.Context, dir string) error {
	c, err := newCluster(Config{Dir: dir, Logger: slog.Default()})
	if err != nil {
		return err
	}
	if !c.running(ctx) {
		return nil
	}
	return c.Crash(ctx)
}

// Port returns the port the server listens on.
func (c *Cluster) Port() int { return c.cfg.Port }

// AdminURL returns a superuser connection URL (TCP, with the password) for
// database db.
func (c *Cluster) AdminURL(db string) string {
	return AdminURL(c.cfg.Port, c.password, db)
}

// AdminURL is the superuser's connection URL for database db of the local
// cluster on port whose password is password (see ReadPassword).
func AdminURL(port int, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// PasswordFile returns the file that holds the superuser's password.
func (c *Cluster) PasswordFile() string { return c.cfg.PasswordFile }

// socketURL is a superuser connection through the Unix socket in the data
// directory, which needs no password: only the server's OS user (and root)
// can reach it.
func (c *Cluster) socketURL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, url.QueryEscape(c.cfg.Dir), c.cfg.Port)
}

// Stop shuts the server down (fast mode: open sessions are disconnected,
// committed data is safe).
func (c *Cluster) Stop(ctx context.Context) error {
	if _, err := c.run(ctx, "pg_ctl", "-D", c.cfg.Dir, "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	return nil
}

// Crash stops the server in immediate mode: every server process quits at
// once, without a checkpoint, as if the machine lost power; the next start
// recovers from the WAL. Fault tests use it.
func (c *Cluster) Crash(ctx context.Context) error {
	if _, err := c.run(ctx, "pg_ctl", "-D", c.cfg.Dir, "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("stop postgres (immediate): %w", err)
	}
	return nil
}

// EnsureDatabase creates role (with password and REPLICATION, which logical
// decoding needs) and database owned by it, when they do not exist yet, and
// makes it the one database the role can connect to. The role's password
// is (re)set to password.
func (c *Cluster) EnsureDatabase(ctx context.Context, db, role, password string) error {
	conn, err := pgx.Connect(ctx, c.socketURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", role, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	q := fmt.Sprintf("%s ROLE %s LOGIN REPLICATION PASSWORD %s", verb, pgx.Identifier{role}.Sanitize(), quoteLiteral(password))
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("%s role %s: %w", strings.ToLower(verb), role, err)
	}
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", db, err)
	}
	if !exists {
		q := fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{db}.Sanitize(), pgx.Identifier{role}.Sanitize())
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create database %s: %w", db, err)
		}
	}
	q = fmt.Sprintf("REVOKE CONNECT ON DATABASE %[1]s FROM PUBLIC; GRANT CONNECT ON DATABASE %[1]s TO %[2]s",
		pgx.Identifier{db}.Sanitize(), pgx.Identifier{role}.Sanitize())
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("restrict database %s to %s: %w", db, role, err)
	}
	return nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func (c *Cluster) prepareDir() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if c.asUser == "" {
		return nil
	}
	u, err := user.Lookup(c.asUser)
	if err != nil {
		return fmt.Errorf("look up user %s (postgres refuses to run as root): %w", c.asUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The postgres user must be able to reach the data dir through its parents.
	for p := filepath.Dir(c.cfg.Dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("open %s to the postgres user: %w", p, err)
			}
		}
	}
	if err := os.Chown(c.cfg.Dir, uid, gid); err != nil {
		return fmt.Errorf("chown data dir: %w", err)
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	c.log.InfoContext(ctx, "initialising postgres cluster", "dir", c.cfg.Dir)
	if _, err := c.run(ctx, "initdb", "-D", c.cfg.Dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// writeConf (re)writes the settings this project depends on; they live in
// an included file so that initdb's defaults stay untouched.
func (c *Cluster) writeConf() error {
	fsync := "off"
	if c.cfg.Durable {
		fsync = "on"
	}
	conf := fmt.Sprintf(`# written by sagabox (internal/pgcluster); edits are overwritten
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 300
shared_buffers = 128MB
fsync = %s
full_page_writes = %s
log_min_messages = warning
`, c.cfg.Port, c.cfg.Dir, fsync, fsync)
	path := filepath.Join(c.cfg.Dir, "sagabox.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Who may connect how: rewritten at every start, so a cluster an older
	// version initialised with trust asks for passwords too.
	hba := `# written by sagabox (internal/pgcluster); edits are overwritten
# The Unix socket is in the data directory, which only the server's OS user
# (and root) can enter. Over TCP (127.0.0.1 only) everyone needs a password;
# which database a role may open is decided by its CONNECT privilege.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
`
	hbaPath := filepath.Join(c.cfg.Dir, "pg_hba.conf")
	if err := os.WriteFile(hbaPath, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", hbaPath, err)
	}
	main := filepath.Join(c.cfg.Dir, "postgresql.conf")
	b, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("read %s: %w", main, err)
	}
	if !bytes.Contains(b, []byte("include_if_exists = 'sagabox.conf'")) {
		b = append(b, []byte("\ninclude_if_exists = 'sagabox.conf'\n")...)
		if err := os.WriteFile(main, b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", main, err)
		}
	}
	if c.asUser != "" {
		u, err := user.Lookup(c.asUser)
		if err != nil {
			return fmt.Errorf("look up user %s: %w", c.asUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{path, hbaPath} {
			if err := os.Chown(f, uid, gid); err != nil {
				return fmt.Errorf("chown %s: %w", f, err)
			}
		}
	}
	return nil
}

func (c *Cluster) running(ctx context.Context) bool {
	_, err := c.run(ctx, "pg_ctl", "-D", c.cfg.Dir, "status")
	return err == nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.socketURL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on port %d not ready: %w", c.cfg.Port, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin := filepath.Join(c.binDir, name)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Dir = "/"
	// The server must outlive a cancelled context of its starter only via
	// pg_ctl's own daemonising; pg_ctl itself returns promptly.
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// findBinDir locates PostgreSQL's server binaries: $PG_BIN, pg_config
// --bindir, /usr/lib/postgresql/<newest>/bin, then $PATH.
func findBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool {
		return versionOf(matches[i]) > versionOf(matches[j])
	})
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("postgres server binaries not found: install them (apt-get install postgresql) or set PG_BIN")
}

func versionOf(initdbPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))))
	return v
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Dir is the cluster's data directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }
