package nvmlstub

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ChildEnv marks the child process that InChild starts.
const ChildEnv = "NVMLSTUB_CHILD"

// childTimeout bounds a child test process.
const childTimeout = 2 * time.Minute

// InChild runs body in a child process that loads the stand-in NVML
// configured as node: the test binary run again with -test.run naming
// t's test only, with env added to its environment. In the parent it
// writes node, starts the child and fails t when the child fails (with
// its output); in the child it runs body with the stub to control.
// t's test must call InChild once, first.
func InChild(t *testing.T, node Node, env []string, body func(t *testing.T, s Stub)) {
	t.Helper()
	if os.Getenv(ChildEnv) == "1" {
		s, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		body(t, s)
		return
	}
	lib := Build(t)
	s, err := node.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+runPattern(t.Name()), "-test.v",
		"-test.count=1", "-test.timeout="+childTimeout.String())
	cmd.Env = append(append(append(os.Environ(), ChildEnv+"=1"), s.Env(lib)...), env...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil && strings.Contains(string(out), "--- PASS: "+t.Name()+" "):
		if testing.Verbose() {
			t.Logf("child:\n%s", out)
		}
	case err == nil && strings.Contains(string(out), "--- SKIP: "+t.Name()+" "):
		t.Skipf("child skipped:\n%s", out)
	default:
		t.Fatalf("child process (%v):\n%s", err, out)
	}
}

// runPattern is the -test.run pattern that matches test name exactly.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
