package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	vmmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Push sends a registry's tokenwatt metrics, as Prometheus text, to a URL
// every interval and once more at the end: VictoriaMetrics'
// /api/v1/import/prometheus, vmagent, or a Pushgateway
// (/metrics/job/NAME). It is for runs that nothing can scrape.
//
// The transport is github.com/VictoriaMetrics/metrics' push client, fed
// from the client_golang registry: one registry, pushed and served alike.
// Only tokenwatt_* metrics are pushed; the Go runtime's would collide
// between loadgen processes that carry no instance label.
type Push struct {
	url    string
	reg    prometheus.Gatherer
	opts   *vmmetrics.PushOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// pushAttempts bounds the final push's retries.
const pushAttempts = 3

// StartPush validates pushURL and starts the periodic push. Failures are
// logged as warnings (nil logger: dropped) and retried at the next
// interval; they never stop a run.
func StartPush(pushURL string, interval time.Duration, reg prometheus.Gatherer, logger *slog.Logger) (*Push, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(pushURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--push-url %q: want an http(s) URL such as http://victoria:8428/api/v1/import/prometheus", pushURL)
	}
	if interval <= 0 {
		return nil, fmt.Errorf("--push-interval %v: must be positive", interval)
	}
	p := &Push{url: pushURL, reg: reg}
	p.opts = &vmmetrics.PushOptions{
		Method: "POST",
		// The Pushgateway's API takes plain bodies; VictoriaMetrics and
		// vmagent take gzip, which the library sends by default.
		DisableCompression: strings.Contains(u.Path, "/metrics/job/"),
		LogErr: func(format string, args ...any) {
			logger.Warn(fmt.Sprintf("push to %s: "+format, append([]any{u.Redacted()}, args...)...))
		},
		WaitGroup: &p.wg,
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if err := vmmetrics.InitPushExtWithOptions(ctx, pushURL, interval, p.write, p.opts); err != nil {
		cancel()
		return nil, fmt.Errorf("--push-url %q: %w", pushURL, err)
	}
	return p, nil
}

// write renders the tokenwatt metrics in the text exposition format.
// Native histograms have no text form; their classic buckets go instead.
func (p *Push) write(w io.Writer) {
	families, err := p.reg.Gather()
	if err != nil {
		p.opts.LogErr("gather metrics: %v", err)
		return
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if !strings.HasPrefix(mf.GetName(), Namespace+"_") {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			p.opts.LogErr("encode %s: %v", mf.GetName(), err)
			return
		}
	}
	_, _ = w.Write(buf.Bytes())
}

// Close stops the periodic push and pushes the final values, retrying a
// few times within ctx. Its error is for logging: the run has its records.
func (p *Push) Close(ctx context.Context) error {
	p.cancel()
	p.wg.Wait()
	var err error
	for attempt := range pushAttempts {
		if err = vmmetrics.PushMetricsExt(ctx, p.url, p.write, p.opts); err == nil {
			return nil
		}
		if attempt < pushAttempts-1 {
			select {
			case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("final push: %w (then %w)", err, ctx.Err())
			}
		}
	}
	return fmt.Errorf("final push after %d attempts: %w", pushAttempts, err)
}
