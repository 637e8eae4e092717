package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/tokenwatt/tokenwatt/htmlreport"
)

// reportCmd writes the HTML report of a run, several runs or a sweep
// (docs/htmlreport.md).
type reportCmd struct {
	Dirs    []string `arg:"" name:"dir" help:"A run directory (OUT/RUN_ID); several to compare them; or a sweep's directory (any directory of run directories)."`
	Output  string   `short:"o" placeholder:"FILE" help:"The HTML file to write (default: DIR/report.html for one directory, compare.html in the current directory for several)."`
	Latency string   `name:"frontier-latency" placeholder:"DIST_STAT" help:"A sweep's latency for its curves and frontier: ttft, itl, tpot, e2e or e2e_from_sched, then mean, p50, p90, p95, p99 or p99.9 (default: the sweep's own, else e2e_p99)."`
}

func (c *reportCmd) Run(e *env) error {
	out := c.Output
	if out == "" {
		out = "compare.html"
		if len(c.Dirs) == 1 {
			out = filepath.Join(c.Dirs[0], "report.html")
		}
	}
	kind, err := htmlreport.WriteFile(out, c.Dirs, htmlreport.Options{Latency: c.Latency, Generator: "loadgen " + version})
	var ie *htmlreport.InputError
	if errors.As(err, &ie) {
		return usageErr(err)
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(e.stdout, "loadgen: wrote %s (%s report)\n", out, kind)
	return nil
}
