package registry_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sagabox/sagabox/"

// The dependency rules of the layout, checked on every non-test Go file's
// imports: arrows point down (cmd → services → pkg), pkg/ is a library that
// imports nothing of the application, internal/ never imports services/,
// services never import each other, and a participant never imports the
// orchestrator (pkg/saga).
func TestImportsPointDown(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	rules := []struct {
		from, to, why string
	}{
		{"pkg/", "internal/", "pkg/ is a library: it imports nothing of the application"},
		{"pkg/", "services/", "pkg/ is a library"},
		{"pkg/", "registry", "pkg/ is a library"},
		{"pkg/", "api", "pkg/ is a library"},
		{"pkg/", "contracts", "pkg/ is a library"},
		{"pkg/", "cmd/", "pkg/ is a library"},
		{"internal/", "services/", "internal/ holds runtime pieces the binary wires; it never imports a service"},
		{"internal/", "registry", "the registry imports the services"},
		{"services/customer", "pkg/saga", "a participant never imports the orchestrator"},
		{"services/payment", "pkg/saga", "a participant never imports the orchestrator"},
		{"pkg/participant", "pkg/saga", "the participant library never imports the orchestrator"},
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || rel == "bench" || rel == "examples") {
			return filepath.SkipDir // modules of their own, or hidden
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel)) + "/"
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module) {
				continue
			}
			target := strings.TrimPrefix(p, module)
			checked++
			for _, r := range rules {
				if strings.HasPrefix(dir, r.from) && (target == strings.TrimSuffix(r.to, "/") || strings.HasPrefix(target, r.to)) {
					t.Errorf("%s imports %s: %s", rel, target, r.why)
				}
			}
			if svc, ok := strings.CutPrefix(dir, "services/"); ok {
				own := strings.SplitN(svc, "/", 2)[0]
				if other, ok := strings.CutPrefix(target, "services/"); ok && strings.SplitN(other, "/", 2)[0] != own {
					t.Errorf("%s imports %s: services never import each other", rel, target)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Errorf("only %d imports checked: the walk missed the code", checked)
	}
	if _, err := os.Stat(filepath.Join(root, "pkg", "saga")); err != nil {
		t.Fatal(err)
	}
}
