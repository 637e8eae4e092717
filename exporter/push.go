package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/tokenwatt/tokenwatt/internal/redact"
)

// Push sends a registry's tokenwatt metrics, as Prometheus text, to a URL
// every interval and once more at the end: VictoriaMetrics'
// /api/v1/import/prometheus, vmagent, or a Pushgateway
// (/metrics/job/NAME). It is for runs that nothing can scrape.
//
// Only tokenwatt_* metrics are pushed; the Go runtime's would collide
// between loadgen processes that carry no instance label. Bodies are
// gzip-compressed except for a Pushgateway, whose API takes plain ones.
// An error answer is read and logged up to maxPushErrorBody bytes, so a
// target that answers with a body without end costs neither memory nor
// an endless log line.
type Push struct {
	url      string // as given: net/http sends its user:password as basic auth
	redacted string // for messages
	gzip     bool
	interval time.Duration
	reg      prometheus.Gatherer
	client   *http.Client
	log      *slog.Logger
	cancel   context.CancelFunc
	done     chan struct{}
}

// pushAttempts bounds the final push's retries.
const pushAttempts = 3

// maxPushErrorBody bounds how much of a push target's error answer is
// read and quoted in the log (docs/definitions.md, "Bounds").
const maxPushErrorBody = 4 << 10

// StartPush validates pushURL and starts the periodic push. Failures are
// logged as warnings (nil logger: dropped) and retried at the next
// interval; they never stop a run.
func StartPush(pushURL string, interval time.Duration, reg prometheus.Gatherer, logger *slog.Logger) (*Push, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(pushURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--push-url %q: want an http(s) URL such as http://victoria:8428/api/v1/import/prometheus", redact.String(pushURL))
	}
	if interval <= 0 {
		return nil, fmt.Errorf("--push-interval %v: must be positive", interval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Push{
		url:      pushURL,
		redacted: redact.URL(u),
		gzip:     !strings.Contains(u.Path, "/metrics/job/"),
		interval: interval,
		reg:      reg,
		client:   &http.Client{},
		log:      logger,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go p.loop(ctx)
	return p, nil
}

// loop pushes every interval until ctx ends.
func (p *Push) loop(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, p.interval+time.Second)
		err := p.push(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Warn(err.Error())
		}
	}
}

// push sends the current values once.
func (p *Push) push(ctx context.Context) error {
	body, err := p.body()
	if err != nil {
		return fmt.Errorf("push to %s: %w", p.redacted, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("push to %s: %w", p.redacted, err)
	}
	req.Header.Set("Content-Type", "text/plain")
	if p.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message would repeat the URL
		}
		return fmt.Errorf("push to %s: %w", p.redacted, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain a little so the connection can be reused; an answer
		// without end is cut.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPushErrorBody))
		return nil
	}
	return fmt.Errorf("push to %s: HTTP %s, expecting 2xx; response body: %s", p.redacted, resp.Status, quoteBody(resp))
}

// quoteBody quotes at most maxPushErrorBody bytes of an error answer and
// says how much more there was, or that more was not read.
func quoteBody(resp *http.Response) string {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPushErrorBody+1))
	if len(b) <= maxPushErrorBody {
		if err != nil {
			return fmt.Sprintf("%q (then %v)", b, err)
		}
		return strconv.Quote(string(b))
	}
	b = b[:maxPushErrorBody]
	if resp.ContentLength > maxPushErrorBody {
		return fmt.Sprintf("%q…(%d more bytes)", b, resp.ContentLength-maxPushErrorBody)
	}
	return fmt.Sprintf("%q…(more not read)", b)
}

// body is the push body: the tokenwatt metrics as text, gzipped unless
// the target is a Pushgateway.
func (p *Push) body() ([]byte, error) {
	var text bytes.Buffer
	if err := p.write(&text); err != nil {
		return nil, err
	}
	if !p.gzip {
		return text.Bytes(), nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(text.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// write renders the tokenwatt metrics in the text exposition format.
// Native histograms have no text form; their classic buckets go instead.
func (p *Push) write(w io.Writer) error {
	families, err := p.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if !strings.HasPrefix(mf.GetName(), Namespace+"_") {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encode %s: %w", mf.GetName(), err)
		}
	}
	return nil
}

// Close stops the periodic push and pushes the final values, retrying a
// few times within ctx. Its error is for logging: the run has its records.
func (p *Push) Close(ctx context.Context) error {
	p.cancel()
	<-p.done
	var err error
	for attempt := range pushAttempts {
		if err = p.push(ctx); err == nil {
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
