// Command gen writes tokenwatt's Grafana dashboards (package grafana) as
// JSON files for Grafana's file provisioning. Run it with
// `go generate ./grafana`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tokenwatt/tokenwatt/grafana"
)

func main() {
	out := flag.String("out", "dashboards", "directory to write the dashboards to")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	ds, err := grafana.Dashboards()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range ds {
		b, err := grafana.Render(d.Dashboard)
		if err != nil {
			return fmt.Errorf("%s: %w", d.File, err)
		}
		if err := os.WriteFile(filepath.Join(dir, d.File), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
