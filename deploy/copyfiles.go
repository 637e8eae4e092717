//go:build ignore

// copyfiles copies the rule files and dashboards into the Helm chart
// (helm/tokenwatt/files), whose templates can only read files inside the
// chart: `go generate ./deploy` runs it from this directory. Stale copies
// are removed.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

var copies = []struct{ from, to string }{
	{"../prometheus/rules/*.yml", "helm/tokenwatt/files/rules"},
	{"../grafana/dashboards/*.json", "helm/tokenwatt/files/dashboards"},
}

func main() {
	for _, c := range copies {
		if err := copyGlob(c.from, c.to); err != nil {
			fmt.Fprintln(os.Stderr, "copyfiles:", err)
			os.Exit(1)
		}
	}
}

func copyGlob(pattern, dir string) error {
	srcs, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return fmt.Errorf("no file matches %s", pattern)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, filepath.Base(pattern)))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
