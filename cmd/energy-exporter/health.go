package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// healthCmd is the container health check: it passes only when the
// exporter serves GPU series, not merely when its port is open (an
// exporter whose DCGM host engine is gone, or whose GPUs all stopped
// answering, serves an empty /metrics).
type healthCmd struct {
	URL     string        `default:"http://127.0.0.1:9466/metrics" help:"The exporter's /metrics URL."`
	Timeout time.Duration `default:"5s" help:"Give up after this long."`
}

// gpuSeries is the metric whose presence means GPUs are being served.
const gpuSeries = "tokenwatt_gpu_energy_joules_total"

func (c *healthCmd) Run(e *env) error {
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	n, err := countSeries(ctx, c.URL, gpuSeries)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("unhealthy: %s serves no %s series (no GPU is answering; see the exporter's log)", c.URL, gpuSeries)
	}
	fmt.Fprintf(e.stdout, "healthy: %d GPU(s) served at %s\n", n, c.URL)
	return nil
}

// countSeries fetches url and counts the series of metric name.
func countSeries(ctx context.Context, url, name string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("--url %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("unhealthy: GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return 0, fmt.Errorf("unhealthy: %s: %w", url, err)
	}
	if f, ok := fams[name]; ok {
		return len(f.GetMetric()), nil
	}
	return 0, nil
}
