package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sagabox/sagabox/registry"
)

// dockerfileLines returns the Dockerfile's instructions with continuation
// lines joined and comments dropped.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(root(t), "Dockerfile"))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// shellWords splits s like sh does for plain words and quotes.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// dockerBuild returns the environment assignments and the go arguments of
// the Dockerfile's `go build` command.
func dockerBuild(t *testing.T) (envs, args []string) {
	t.Helper()
	for _, line := range dockerfileLines(t) {
		if !strings.HasPrefix(line, "RUN ") || !strings.Contains(line, "go build") {
			continue
		}
		words := shellWords(strings.TrimPrefix(line, "RUN "))
		i := 0
		for ; i < len(words) && strings.HasPrefix(words[i], "--"); i++ { // RUN --mount=...
		}
		for ; i < len(words) && words[i] != "go"; i++ {
			if !strings.Contains(words[i], "=") {
				t.Fatalf("Dockerfile: cannot follow %q before go build in %q", words[i], line)
			}
			envs = append(envs, words[i])
		}
		for i++; i < len(words) && words[i] != "&&" && words[i] != ";"; i++ {
			args = append(args, words[i])
		}
		if len(args) == 0 || args[0] != "build" {
			t.Fatalf("Dockerfile: no go build in %q", line)
		}
		return envs, args
	}
	t.Fatal("Dockerfile has no RUN ... go build")
	return nil, nil
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	lines := dockerfileLines(t)
	var froms []string
	for _, l := range lines {
		if f, ok := strings.CutPrefix(l, "FROM "); ok {
			froms = append(froms, strings.Fields(f)[0])
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile stages %v: want a multi-stage build", froms)
	}
	// The builder's Go is the one go.mod asks for.
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, filepath.Join(root(t), "go.mod")))
	if goMod == nil || !strings.HasPrefix(froms[0], "golang:"+goMod[1]) {
		t.Errorf("builder image %s, want golang:%s (go.mod)", froms[0], goMod)
	}
	// The compose healthchecks run wget inside the service containers: the
	// final image must have one (alpine's busybox; distroless has none).
	if !strings.HasPrefix(froms[len(froms)-1], "alpine:") {
		t.Errorf("final image %s: the compose healthchecks need busybox wget (alpine)", froms[len(froms)-1])
	}
	text := strings.Join(lines, "\n")
	// Module download is its own layer, before the sources are copied.
	modCopy := strings.Index(text, "COPY go.mod go.sum")
	download := strings.Index(text, "go mod download")
	srcCopy := strings.Index(text, "COPY . .")
	if modCopy < 0 || download < modCopy || srcCopy < download {
		t.Errorf("Dockerfile: want COPY go.mod go.sum, then go mod download, then COPY . .")
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(text, -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "root") || strings.HasPrefix(user[len(user)-1][1], "0") {
		t.Errorf("the final image must run as a non-root USER, got %v", user)
	}
	_, args := dockerBuild(t)
	out := args[slices.Index(args, "-o")+1]
	if !strings.Contains(text, "COPY --from=") || !strings.Contains(text, out) {
		t.Errorf("the final stage does not copy the built binary %s", out)
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \[".*sagabox"\]`).MatchString(text) {
		t.Errorf("ENTRYPOINT must be the sagabox binary")
	}
}

func TestDockerignoreKeepsSources(t *testing.T) {
	t.Parallel()
	var patterns []string
	for _, l := range strings.Split(readFile(t, filepath.Join(root(t), ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, want := range []string{".git", "bin", ".data"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "internal", "migrations", "pkg", "services"} {
		for _, p := range patterns {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), keep); ok {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, keep)
			}
		}
	}
}

// TestDockerfileBuild runs the Dockerfile's go build command as written (the
// output path aside) and checks the binary runs every service subcommand
// docker-compose.yml uses.
func TestDockerfileBuild(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	envs, args := dockerBuild(t)
	if !slices.Contains(envs, "CGO_ENABLED=0") {
		t.Errorf("go build env %v: want CGO_ENABLED=0 (static binary for the final image)", envs)
	}
	if !slices.Contains(args, "-trimpath") {
		t.Errorf("go build %v: want -trimpath", args)
	}
	if pkg := args[len(args)-1]; pkg != "./cmd/sagabox" {
		t.Errorf("go build builds %s, want ./cmd/sagabox", pkg)
	}
	o := slices.Index(args, "-o")
	if o < 0 || o+1 >= len(args) {
		t.Fatalf("go build %v: no -o", args)
	}
	bin := filepath.Join(t.TempDir(), "sagabox")
	args = slices.Clone(args)
	args[o+1] = bin

	cmd := exec.Command("go", args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), envs...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("sagabox help: %v\n%s", err, out)
	}
	p := loadCompose(t)
	for _, a := range apps {
		cmdName := service(t, p, a.service).Command[0]
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(cmdName) + `\s`).Match(out) {
			t.Errorf("sagabox help does not list %q (the command of %s):\n%s", cmdName, a.service, out)
		}
	}
}

// The image exposes the port of every component of the registry that
// listens (the services and the console), and only those.
func TestDockerfileExposesTheRegistrysPorts(t *testing.T) {
	t.Parallel()
	m := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindStringSubmatch(readFile(t, filepath.Join(root(t), "Dockerfile")))
	if m == nil {
		t.Fatal("the Dockerfile exposes nothing")
	}
	got := strings.Fields(m[1])
	var want []string
	for _, c := range registry.Components() {
		if c.IsService() || c.Role == registry.Console {
			want = append(want, strconv.Itoa(c.Port))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("EXPOSE %v, want the registry's %v", got, want)
	}
}
