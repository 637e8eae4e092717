package main

import (
	"fmt"

	"github.com/tokenwatt/tokenwatt/compare"
	"github.com/tokenwatt/tokenwatt/internal/command"
)

// compareCmd compares runs from their run directories.
type compareCmd struct {
	Base string   `arg:"" placeholder:"BASE" help:"The base run: its directory (OUT/<run_id>/) or its report.json."`
	New  []string `arg:"" placeholder:"NEW" help:"The runs to compare with it, likewise."`

	Format         string  `enum:"table,markdown,json" default:"table" help:"Output: table (terminal), markdown or json (CI comments)."`
	Confidence     float64 `default:"0.95" help:"Confidence level of the intervals (0 < C < 1)."`
	Resamples      int     `default:"2000" help:"Bootstrap resamples of each run's requests."`
	Seed           uint64  `default:"1" help:"Seed of the resamples (the same seed gives the same intervals)."`
	FailOn         string  `name:"fail-on" placeholder:"COND,..." help:"Exit 1 when a figure changed significantly beyond a threshold: METRIC>+N% (an increase) or METRIC<-N% (a decrease), e.g. 'joules_per_output_token>+5%,ttft_p99>+10%'."`
	AllowDifferent bool    `name:"allow-different" help:"Compare runs that differ in scenario, dataset, token bounds or GPUs (refused otherwise)."`
}

// exitRegression is compare's exit code for a --fail-on regression.
const exitRegression = command.ExitFailed

func (c *compareCmd) Run(e *env) error {
	opts := compare.Options{Confidence: c.Confidence, Resamples: c.Resamples, Seed: c.Seed, AllowDifferent: c.AllowDifferent}
	if c.FailOn != "" {
		var err error
		if opts.FailOn, err = compare.ParseFailOn(c.FailOn); err != nil {
			return usageErrf("--fail-on: %v", err)
		}
	}
	base, err := compare.Load(c.Base)
	if err != nil {
		return usageErr(err)
	}
	var news []*compare.Run
	for _, p := range c.New {
		r, err := compare.Load(p)
		if err != nil {
			return usageErr(err)
		}
		news = append(news, r)
	}
	// Runs refused as not comparable (compare.RefusedError) are bad input.
	res, err := compare.Compare(base, news, opts)
	if err != nil {
		return usageErr(err)
	}
	if err := compare.Write(e.stdout, res, c.Format); err != nil {
		return err
	}
	switch {
	case res.Failed():
		return command.Exit(exitRegression, fmt.Errorf("regression beyond --fail-on %s", c.FailOn))
	case res.Untested():
		return usageErrf("--fail-on: some conditions could not be tested (see above)")
	}
	return nil
}
