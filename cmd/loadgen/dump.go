package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/tokenwatt/tokenwatt/dump"
	"github.com/tokenwatt/tokenwatt/report"
)

type dumpCmd struct {
	Prometheus string `required:"" env:"TOKENWATT_PROMETHEUS_URL" placeholder:"URL" help:"Prometheus (or VictoriaMetrics) base URL, e.g. http://localhost:9090 or http://localhost:8428."`

	RunID   string       `name:"run-id" help:"The loadgen run to summarize (its window comes from tokenwatt_run_start/end_timestamp_seconds)."`
	All     bool         `env:"TOKENWATT_DUMP_ALL" help:"One row per loadgen run that Prometheus holds from the last --since."`
	Since   promDuration `default:"7d" env:"TOKENWATT_DUMP_SINCE" help:"How far back to look for runs (--source vllm: the window, unless --start is given). Prometheus durations: 30m, 24h, 7d."`
	Start   timeFlag     `placeholder:"TIME" env:"TOKENWATT_DUMP_START" help:"Window start, RFC 3339 or Unix seconds; overrides the run's."`
	End     timeFlag     `placeholder:"TIME" env:"TOKENWATT_DUMP_END" help:"Window end, RFC 3339 or Unix seconds; overrides the run's."`
	Out     string       `default:"-" placeholder:"FILE" env:"TOKENWATT_DUMP_OUT" help:"CSV file to append the rows to (header rules as for summary.csv); - is stdout."`
	Explain bool         `env:"TOKENWATT_DUMP_EXPLAIN" help:"Print every PromQL query and its result to stderr."`

	Source          string        `default:"loadgen" enum:"loadgen,vllm" env:"TOKENWATT_DUMP_SOURCE" help:"loadgen: tokenwatt_* series of loadgen runs; vllm: vLLM's own vllm:* series and GPU energy, no loadgen needed."`
	Model           string        `env:"TOKENWATT_DUMP_MODEL" help:"--source vllm: only this model_name."`
	EnergyMetric    string        `name:"energy-metric" env:"TOKENWATT_DUMP_ENERGY_METRIC" default:"auto" enum:"auto,tokenwatt,dcgm,none" help:"GPU energy: auto (the run's own; vllm: dcgm, else tokenwatt), tokenwatt (tokenwatt_gpu_energy_joules_total), dcgm (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION) or none."`
	GPUSelector     string        `name:"gpu-selector" env:"TOKENWATT_DUMP_GPU_SELECTOR" placeholder:"MATCHERS" help:"PromQL label matchers choosing the GPUs whose energy counts, e.g. 'Hostname=\"node-1\"' (default: the run's own GPUs; dcgm/vllm: all)."`
	CarbonIntensity *float64      `name:"carbon-intensity" placeholder:"G_PER_KWH" help:"Grid carbon intensity, g CO2eq per kWh (default: the run's own)."`
	Timeout         time.Duration `default:"1m" env:"TOKENWATT_DUMP_TIMEOUT" help:"Give up on Prometheus after this long, all queries together."`
}

// promDuration is a flag in Prometheus' duration syntax (7d, 24h, 30m).
type promDuration time.Duration

func (d *promDuration) UnmarshalText(b []byte) error {
	v, err := model.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = promDuration(v)
	return nil
}

// timeFlag is a flag holding an RFC 3339 time or Unix seconds.
type timeFlag struct{ time.Time }

func (t *timeFlag) UnmarshalText(b []byte) error {
	s := string(b)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := int64(f), f-float64(int64(f))
		t.Time = time.Unix(sec, int64(frac*1e9))
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is neither RFC 3339 (2026-11-27T10:00:00Z) nor Unix seconds", s)
	}
	t.Time = v
	return nil
}

func (c *dumpCmd) Run(e *env) error {
	if c.Source == dump.SourceLoadgen && (c.RunID == "") == !c.All {
		return usageErrf("give --run-id ID (one run) or --all (every run of the last --since)")
	}
	u, err := url.Parse(c.Prometheus)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrf("--prometheus %q is not an http(s) URL", c.Prometheus)
	}
	client, err := api.NewClient(api.Config{Address: c.Prometheus, RoundTripper: dump.Transport(api.DefaultRoundTripper)})
	if err != nil {
		return usageErr(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	d := &dump.Dumper{
		API:    v1.NewAPI(client),
		Logger: newLogger(e.stderr, "loadgen dump", false),
	}
	if c.Explain {
		d.Explain = e.stderr
	}
	rows, err := d.Rows(ctx, dump.Options{
		Source: c.Source, RunID: c.RunID, All: c.All, Since: time.Duration(c.Since),
		Start: c.Start.Time, End: c.End.Time,
		EnergyMetric: c.EnergyMetric, GPUSelector: c.GPUSelector, Model: c.Model,
		CarbonIntensity: c.CarbonIntensity,
	})
	if err != nil {
		return c.explainErr(err)
	}
	if c.Out == "-" {
		w := csv.NewWriter(e.stdout)
		_ = w.Write(report.Columns())
		for _, r := range rows {
			_ = w.Write(r.Record())
		}
		w.Flush()
		return w.Error()
	}
	if err := report.AppendCSV(c.Out, rows...); err != nil {
		return usageErr(err)
	}
	fmt.Fprintf(e.stderr, "loadgen dump: appended %d row(s) to %s\n", len(rows), c.Out)
	return nil
}

// explainErr turns the errors a user can fix into bad-input errors with
// a plain message.
func (c *dumpCmd) explainErr(err error) error {
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.Is(err, dump.ErrNotFound):
		return usageErr(err)
	case errors.Is(err, context.DeadlineExceeded):
		return usageErrf("Prometheus at %s did not answer within --timeout %v", c.Prometheus, c.Timeout)
	case errors.Is(err, dump.ErrResponseTooLarge):
		return usageErrf("%v: narrow the window (--since, --start, --end) or the run (--run-id)", err)
	case errors.As(err, &ue) || errors.As(err, &ne):
		return usageErrf("cannot reach Prometheus at %s: %v", c.Prometheus, rootCause(err))
	}
	return err
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		if _, ok := u.(*net.OpError); ok {
			return u
		}
		err = u
	}
}
