package energy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeOptions are the settings the scrape source takes.
type scrapeOptions struct {
	// HTTPClient fetches the endpoint; nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Interval is the sampling interval, quoted when the endpoint turns
	// out to refresh more slowly.
	Interval time.Duration
	// Logf receives notices (what was found, stale counters); nil drops
	// them.
	Logger *slog.Logger
}

// scrapeTimeout bounds one scrape with the default client: a hung
// endpoint must not stall the sampler.
const scrapeTimeout = 10 * time.Second

// maxScrapeBytes bounds a response body. dcgm-exporter's output for a
// host with 8 GPUs is well under 1 MiB.
const maxScrapeBytes = 32 << 20

// scrapeFormat is one family of per-GPU series a scrape endpoint may
// serve, and how its labels and units map onto a Device and a Reading.
type scrapeFormat struct {
	exporter    string  // who serves it, for messages
	energy      string  // the cumulative energy counter; "" for power only
	energyScale float64 // to joules
	power       string  // the power gauge, watts
	// The labels naming the device's index, UUID, model and host.
	gpuLabel, uuidLabel, modelLabel, hostLabel string
	// dcgmBlank: values at or above DCGM's blank sentinels mean "no
	// value", not a reading (dcgm-exporter exports them as they are).
	dcgmBlank bool
}

// Metric names the scrape source looks for.
const (
	tokenwattEnergyMetric = "tokenwatt_gpu_energy_joules_total"
	tokenwattPowerMetric  = "tokenwatt_gpu_power_watts"
	dcgmEnergyMetric      = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" // DCGM field 156, mJ
	dcgmPowerMetric       = "DCGM_FI_DEV_POWER_USAGE"              // DCGM field 155, W
)

var (
	tokenwattScrape = scrapeFormat{exporter: "tokenwatt energy-exporter", energy: tokenwattEnergyMetric, energyScale: 1,
		power: tokenwattPowerMetric, gpuLabel: "gpu", uuidLabel: "uuid", modelLabel: "gpu_model", hostLabel: "hostname"}
	dcgmScrape = scrapeFormat{exporter: "dcgm-exporter", energy: dcgmEnergyMetric, energyScale: 1e-3,
		power: dcgmPowerMetric, gpuLabel: "gpu", uuidLabel: "UUID", modelLabel: "modelName", hostLabel: "Hostname", dcgmBlank: true}
)

// scrapeFormats in order of preference: an energy counter beats power,
// tokenwatt's own series beat dcgm-exporter's.
var scrapeFormats = []scrapeFormat{
	tokenwattScrape,
	dcgmScrape,
	powerOnly(tokenwattScrape),
	powerOnly(dcgmScrape),
}

func powerOnly(f scrapeFormat) scrapeFormat {
	f.energy, f.energyScale = "", 0
	return f
}

func (f scrapeFormat) method() string {
	if f.energy == "" {
		return MethodIntegrated
	}
	return MethodCounter
}

// DCGM's blank values (dcgm_structs.h): DCGM_INT64_BLANK is
// 0x7ffffffffffffff0 and DCGM_FP64_BLANK 140737488355328.0; the other
// blanks (not found, not supported, not permissioned) lie just above.
const (
	dcgmInt64Blank = float64(0x7ffffffffffffff0)
	dcgmFP64Blank  = 140737488355328.0
)

// scrapeSource reads GPU energy from a remote Prometheus text endpoint:
// a tokenwatt energy-exporter, the simulator, or NVIDIA's dcgm-exporter.
type scrapeSource struct {
	url       string
	client    *http.Client
	ownClient bool
	opts      scrapeOptions
	format    scrapeFormat
	devices   []Device
	keys      []string // each device's key in a scrape (see seriesKey)
	parser    expfmt.TextParser

	prevRaw    []float64 // the previous read's counters, for the stale warning
	staleCount int
	warned     bool
}

// openScrape reads the endpoint once to find its GPUs and which of
// scrapeFormats it serves. rawURL is http(s)://HOST:PORT[/PATH], with or
// without the scrape: prefix and the scheme; without a path it is
// /metrics.
func openScrape(ctx context.Context, rawURL string, opts scrapeOptions) (Source, error) {
	u, err := scrapeURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &scrapeSource{
		url:    u.String(),
		client: opts.HTTPClient,
		opts:   opts,
		parser: newScrapeParser(),
	}
	if s.client == nil {
		s.client, s.ownClient = &http.Client{Timeout: scrapeTimeout}, true
	}
	fams, _, err := s.fetch(ctx)
	if err != nil {
		s.closeIdle()
		return nil, fmt.Errorf("energy source scrape:%s: %w", s.url, err)
	}
	for _, f := range scrapeFormats {
		series := extractSeries(fams, f, u.Hostname())
		// A format counts when some GPU has a value: dcgm-exporter can
		// list a field the GPU does not support with a blank value.
		if !slices.ContainsFunc(series, func(g gpuSeries) bool {
			return g.hasEnergy || (f.energy == "" && g.hasPower)
		}) {
			continue
		}
		s.format = f
		for _, sr := range series {
			s.devices = append(s.devices, sr.dev)
			s.keys = append(s.keys, sr.key)
		}
		s.logf("energy source scrape:%s: %d GPU(s) from %s (%s), energy method %s",
			s.url, len(s.devices), f.exporter, seriesNames(f), f.method())
		return s, nil
	}
	s.closeIdle()
	return nil, fmt.Errorf("energy source scrape:%s: no GPU metrics found; looked for %s, %s (tokenwatt energy-exporter, simulator) and %s, %s (dcgm-exporter)",
		s.url, tokenwattEnergyMetric, tokenwattPowerMetric, dcgmEnergyMetric, dcgmPowerMetric)
}

// newScrapeParser returns the exposition parser. UTF-8 validation
// accepts every name a current exporter may write; the zero TextParser's
// unset scheme would reject every name.
func newScrapeParser() expfmt.TextParser {
	return expfmt.NewTextParser(model.UTF8Validation)
}

// scrapeURL normalises a scrape endpoint.
func scrapeURL(raw string) (*url.URL, error) {
	s := strings.TrimPrefix(strings.TrimSpace(raw), SourceScrape+":")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("energy source scrape: %q is not an http(s) URL; write scrape:http://HOST:PORT/metrics", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u, nil
}

func seriesNames(f scrapeFormat) string {
	if f.energy == "" {
		return f.power
	}
	return f.energy + " and " + f.power
}

func (s *scrapeSource) logf(format string, args ...any) {
	if s.opts.Logger != nil {
		s.opts.Logger.Info(fmt.Sprintf(format, args...))
	}
}

func (s *scrapeSource) Name() string      { return SourceScrape }
func (s *scrapeSource) Method() string    { return s.format.method() }
func (s *scrapeSource) Devices() []Device { return s.devices }

func (s *scrapeSource) Close() error {
	s.closeIdle()
	return nil
}

func (s *scrapeSource) closeIdle() {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
}

// Read scrapes the endpoint once. Every reading is stamped with the time
// the response arrived. The values are older than that: tokenwatt's
// energy-exporter and the simulator compute them when scraped, so they
// lag by the response's transfer (well under a millisecond on a LAN),
// but dcgm-exporter serves what it collected up to its collect interval
// earlier (-c, 30 s by default), so its counter advances in steps that
// late and interpolation spreads each step over the interval before it.
func (s *scrapeSource) Read(ctx context.Context, dst []Reading) ([]Reading, error) {
	fams, at, err := s.fetch(ctx)
	if err != nil {
		return dst, fmt.Errorf("scrape %s: %w", s.url, err)
	}
	series := extractSeries(fams, s.format, "")
	byKey := make(map[string]*gpuSeries, len(series))
	for i := range series {
		byKey[series[i].key] = &series[i]
	}
	for i, d := range s.devices {
		r := Reading{Time: at, EnergyJ: math.NaN(), PowerW: math.NaN()}
		sr, ok := byKey[s.keys[i]]
		switch {
		case !ok:
			r.Err = fmt.Errorf("GPU %d (%s) is missing from %s", d.Index, d.UUID, s.url)
		case s.format.energy != "" && !sr.hasEnergy:
			r.Err = fmt.Errorf("GPU %d (%s): %s has no value", d.Index, d.UUID, s.format.energy)
		case s.format.energy == "" && !sr.hasPower:
			r.Err = fmt.Errorf("GPU %d (%s): %s has no value", d.Index, d.UUID, s.format.power)
		default:
			r.EnergyJ, r.PowerW = sr.energyJ, sr.powerW
		}
		dst = append(dst, r)
	}
	s.checkStale(dst[len(dst)-len(s.devices):])
	return dst, nil
}

// checkStale warns once when counters stand still for several reads in a
// row while the GPUs draw power: the endpoint refreshes more slowly than
// tokenwatt samples.
func (s *scrapeSource) checkStale(readings []Reading) {
	if s.format.energy == "" || s.warned {
		return
	}
	stale := s.prevRaw != nil
	for i, r := range readings {
		if r.Err != nil || !(r.PowerW > 0) || s.prevRaw == nil || r.EnergyJ != s.prevRaw[i] {
			stale = false
		}
	}
	s.prevRaw = s.prevRaw[:0]
	for _, r := range readings {
		s.prevRaw = append(s.prevRaw, r.EnergyJ)
	}
	if !stale {
		s.staleCount = 0
		return
	}
	if s.staleCount++; s.staleCount >= 3 {
		s.warned = true
		s.logf("energy source scrape:%s: energy counters unchanged for %d reads %v apart while the GPUs draw power; the endpoint refreshes more slowly than tokenwatt samples (dcgm-exporter: lower its collect interval, -c in ms), so energy arrives in late steps",
			s.url, s.staleCount+1, s.opts.Interval)
	}
}

// fetch GETs the endpoint and parses it. at is when the response arrived.
func (s *scrapeSource) fetch(ctx context.Context) (fams map[string]*dto.MetricFamily, at time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, at, err
	}
	// The classic text format: what every exporter serves, and the one
	// the parser reads.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named by the caller
		}
		return nil, at, fmt.Errorf("cannot reach the endpoint: %w", err)
	}
	at = time.Now()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, at, fmt.Errorf("HTTP %s", resp.Status)
	}
	fams, err = s.parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxScrapeBytes))
	if err != nil {
		return nil, at, fmt.Errorf("not Prometheus text exposition: %w", err)
	}
	return fams, at, nil
}

// gpuSeries is one GPU's values in one scrape.
type gpuSeries struct {
	key                 string
	dev                 Device
	energyJ, powerW     float64
	hasEnergy, hasPower bool
}

// extractSeries collects f's series per GPU, ordered by index then key.
// A GPU with several series of a metric (dcgm-exporter repeats
// device-level fields per MIG instance or per pod using the GPU, with the
// same value) counts its first. host stands in for a missing host label.
func extractSeries(fams map[string]*dto.MetricFamily, f scrapeFormat, host string) []gpuSeries {
	byKey := map[string]*gpuSeries{}
	var order []*gpuSeries
	get := func(m *dto.Metric) *gpuSeries {
		l := labelMap(m)
		key := seriesKey(l, f)
		if g, ok := byKey[key]; ok {
			return g
		}
		g := &gpuSeries{key: key, energyJ: math.NaN(), powerW: math.NaN(), dev: Device{
			Index: -1, UUID: l[f.uuidLabel], Model: l[f.modelLabel], Hostname: l[f.hostLabel],
		}}
		if i, err := strconv.Atoi(l[f.gpuLabel]); err == nil && i >= 0 {
			g.dev.Index = i
		}
		if g.dev.Hostname == "" {
			g.dev.Hostname = host
		}
		byKey[key] = g
		order = append(order, g)
		return g
	}
	if f.energy != "" {
		for _, m := range fams[f.energy].GetMetric() {
			g := get(m)
			if v, ok := sampleValue(m); ok && !g.hasEnergy && !(f.dcgmBlank && v >= dcgmInt64Blank) {
				g.energyJ, g.hasEnergy = v*f.energyScale, true
			}
		}
	}
	for _, m := range fams[f.power].GetMetric() {
		if f.energy != "" && byKey[seriesKey(labelMap(m), f)] == nil {
			continue // a GPU with power but no counter is not one of this format's devices
		}
		g := get(m)
		if v, ok := sampleValue(m); ok && !g.hasPower && !(f.dcgmBlank && v >= dcgmFP64Blank) {
			g.powerW, g.hasPower = v, true
		}
	}
	// Devices without an index label are numbered after the others in
	// the order the endpoint lists them.
	next := 0
	for _, g := range order {
		next = max(next, g.dev.Index+1)
	}
	out := make([]gpuSeries, 0, len(order))
	for _, g := range order {
		if g.dev.Index < 0 {
			g.dev.Index = next
			next++
		}
		out = append(out, *g)
	}
	slices.SortStableFunc(out, func(a, b gpuSeries) int {
		if c := cmp.Compare(a.dev.Index, b.dev.Index); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out
}

// seriesKey identifies a GPU across scrapes: its UUID, which survives a
// renumbering of the indices; its index label where the endpoint gives
// no UUID.
func seriesKey(l map[string]string, f scrapeFormat) string {
	if u := l[f.uuidLabel]; u != "" {
		return u
	}
	return "gpu=" + l[f.gpuLabel]
}

func labelMap(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// sampleValue is a counter's, gauge's or untyped sample's value.
func sampleValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}
