package tokenwatt_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// scripts/gpucheck needs a real GPU to run; here it must at least parse:
// the bash around it and the Python it feeds to python3.
func TestGPUCheckScriptParses(t *testing.T) {
	const script = "scripts/gpucheck"
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", script, err, out)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<<'EOF'")
	if !ok {
		t.Fatal("no Python here-document")
	}
	_, py, _ := strings.Cut(rest, "\n")
	py, _, ok = strings.Cut(py, "\nEOF\n")
	if !ok {
		t.Fatal("the here-document does not end with EOF")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	f := filepath.Join(t.TempDir(), "gpucheck.py")
	if err := os.WriteFile(f, []byte(py), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("python3", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", f).CombinedOutput(); err != nil {
		t.Fatalf("the Python part does not parse: %v\n%s", err, out)
	}
}
