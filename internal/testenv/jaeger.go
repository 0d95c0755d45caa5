package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/pgcluster"
)

// RepoRoot returns the repository's root: the nearest directory above the
// test's working directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// JaegerBinary returns the path of bin/jaeger (built by
// scripts/build-jaeger.sh, `make jaeger`) and whether it exists.
func JaegerBinary(t testing.TB) (string, bool) {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), "bin", "jaeger")
	_, err := os.Stat(bin)
	return bin, err == nil
}

// Jaeger runs bin/jaeger with deploy/jaeger/local.yaml, every port moved to
// a free one, until the test ends, and returns its OTLP/HTTP endpoint and
// its query API's base URL. A test that needs Jaeger fails when it is not
// built, saying how to build it.
func Jaeger(t testing.TB) (otlp, query string) {
	t.Helper()
	bin, ok := JaegerBinary(t)
	if !ok {
		t.Fatalf("this test needs a real Jaeger at %s: build it with scripts/build-jaeger.sh (make jaeger; .ci/run does)", bin)
	}
	conf, err := os.ReadFile(filepath.Join(RepoRoot(t), "deploy", "jaeger", "local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	conf = regexp.MustCompile(`127\.0\.0\.1:(\d+)`).ReplaceAllFunc(conf, func(m []byte) []byte {
		old := strings.TrimPrefix(string(m), "127.0.0.1:")
		if _, ok := ports[old]; !ok {
			p, err := pgcluster.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports[old] = strconv.Itoa(p)
		}
		return []byte("127.0.0.1:" + ports[old])
	})
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for _, p := range []string{ports["4318"], ports["16686"]} {
		Eventually(t, 30*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, "jaeger did not open port %s:\n%s", p, &out)
	}
	return "http://127.0.0.1:" + ports["4318"], "http://127.0.0.1:" + ports["16686"]
}
