package tokenwatt_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tokenwatt/tokenwatt"

// layerRule is one row of ARCHITECTURE.md's package table.
type layerRule struct {
	pkg string // module-relative ("." for the module root)
	// everything forbids every other package of the module but those in
	// except; forbidden names packages (module-relative, "x/..." for a
	// subtree, or a full import path outside the module, also with /...).
	everything bool
	except     []string
	forbidden  []string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readLayerRules parses the "## Packages" table of ARCHITECTURE.md: the
// first cell names the package, the last says what it must not depend
// on: "—", "everything", "everything but `a`, `b`", or a list of `x`.
func readLayerRules(t *testing.T) []layerRule {
	t.Helper()
	f, err := os.Open("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []layerRule
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			inTable = line == "## Packages"
			continue
		case !inTable || !strings.HasPrefix(line, "| `"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		first, last := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[len(cells)-1])
		m := backticked.FindStringSubmatch(first)
		if m == nil || len(cells) < 3 {
			t.Fatalf("ARCHITECTURE.md: bad package row %q", line)
		}
		r := layerRule{pkg: m[1]}
		var names []string
		for _, n := range backticked.FindAllStringSubmatch(last, -1) {
			names = append(names, n[1])
		}
		switch {
		case last == "—":
		case strings.HasPrefix(last, "everything but "):
			r.everything, r.except = true, names
		case last == "everything":
			r.everything = true
		case len(names) > 0:
			r.forbidden = names
		default:
			t.Fatalf("ARCHITECTURE.md: %s: cannot read 'must not depend on' cell %q", r.pkg, last)
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("ARCHITECTURE.md has no package table under '## Packages'")
	}
	return rules
}

// goPackage is what go list says of one package.
type goPackage struct {
	ImportPath string
	Deps       []string
}

// listPackages runs go list over the module: every package and its
// (non-test) dependencies, transitively.
func listPackages(t *testing.T) map[string]goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "./...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]goPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[relative(p.ImportPath)] = p
	}
	return pkgs
}

// relative is an import path relative to the module ("." for its root),
// or unchanged outside it.
func relative(path string) string {
	switch {
	case path == module:
		return "."
	case strings.HasPrefix(path, module+"/"):
		return strings.TrimPrefix(path, module+"/")
	}
	return path
}

// matches reports whether pattern ("x", "x/...") names pkg.
func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// inModule reports whether an import path is one of this module's
// packages.
func inModule(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// violations lists what pkg depends on against its rule.
func (r layerRule) violations(deps []string) []string {
	var bad []string
	for _, path := range deps {
		d := relative(path)
		if d == r.pkg {
			continue
		}
		switch {
		case r.everything && inModule(path) && !slices.ContainsFunc(r.except, func(e string) bool { return matches(e, d) }):
			bad = append(bad, d)
		case slices.ContainsFunc(r.forbidden, func(f string) bool { return matches(f, d) }):
			bad = append(bad, d)
		}
	}
	return bad
}

// TestLayering: no package depends (directly or through others) on what
// ARCHITECTURE.md's "must not depend on" column forbids it, and the table
// lists every package of the module.
func TestLayering(t *testing.T) {
	rules := readLayerRules(t)
	pkgs := listPackages(t)
	listed := map[string]bool{}
	for _, r := range rules {
		listed[r.pkg] = true
		p, ok := pkgs[r.pkg]
		if !ok {
			// A row may name a directory of non-Go code (a Python server).
			if fi, err := os.Stat(filepath.FromSlash(r.pkg)); err != nil || !fi.IsDir() {
				t.Errorf("ARCHITECTURE.md lists %s, which is not a package or directory of the module", r.pkg)
			}
			continue
		}
		if bad := r.violations(p.Deps); len(bad) > 0 {
			t.Errorf("%s depends on %s, which ARCHITECTURE.md says it must not", r.pkg, strings.Join(bad, ", "))
		}
	}
	for pkg := range pkgs {
		if !listed[pkg] {
			t.Errorf("package %s is missing from ARCHITECTURE.md's package table", pkg)
		}
	}
}

// The rule reader and matcher catch what they must: a forbidden import,
// directly or through a subtree pattern, and "everything but".
func TestLayerRuleViolations(t *testing.T) {
	r := layerRule{pkg: "energy", forbidden: []string{"loadgen/...", "report", "gopkg.in/yaml.v3"}}
	got := r.violations([]string{module + "/loadgen/run", module + "/report", "gopkg.in/yaml.v3", module + "/internal/hrtimer", "fmt"})
	if want := []string{"loadgen/run", "report", "gopkg.in/yaml.v3"}; !slices.Equal(got, want) {
		t.Errorf("forbidden list: %v, want %v", got, want)
	}
	r = layerRule{pkg: "internal/hrtimer", everything: true, except: []string{"internal/command"}}
	got = r.violations([]string{module + "/internal/hrtimer", module + "/internal/command", module + "/energy", "golang.org/x/sys/unix"})
	if want := []string{"energy"}; !slices.Equal(got, want) {
		t.Errorf("everything but: %v, want %v", got, want)
	}
	if fmt.Sprint(layerRule{}.violations([]string{module + "/energy"})) != "[]" {
		t.Error("a rule of — forbids something")
	}
}
