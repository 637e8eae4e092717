package energy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
	"github.com/tokenwatt/tokenwatt/internal/redact"
)

// scrapeOptions are the settings the scrape source takes.
type scrapeOptions struct {
	// HTTPClient fetches the endpoint; nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Interval is the sampling interval, quoted when the endpoint turns
	// out to refresh more slowly.
	Interval time.Duration
	// Logger receives notices (what was found, stale counters); nil
	// drops them.
	Logger *slog.Logger
	// GPUs chooses among the endpoint's GPUs (--gpus, see ParseGPUs):
	// indices and UUIDs are matched on the exporter's gpu and UUID (uuid)
	// labels.
	GPUs string
	// Selector is PromQL label matchers without braces that the GPUs'
	// series must match (see parseSelector).
	Selector string
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
	// The labels naming the device's index, UUID and model.
	gpuLabel, uuidLabel, modelLabel string
	// hostLabels name the host, the first present wins: dcgm-exporter
	// wrote Hostname up to 4.8 and hostname since.
	hostLabels []string
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
		power: tokenwattPowerMetric, gpuLabel: "gpu", uuidLabel: "uuid", modelLabel: "gpu_model", hostLabels: []string{"hostname"}}
	dcgmScrape = scrapeFormat{exporter: "dcgm-exporter", energy: dcgmEnergyMetric, energyScale: 1e-3,
		power: dcgmPowerMetric, gpuLabel: "gpu", uuidLabel: "UUID", modelLabel: "modelName", hostLabels: []string{"hostname", "Hostname"},
		dcgmBlank: true}
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
	target    string // the URL requested, credentials included
	url       string // the URL as messages show it: credentials redacted
	client    *http.Client
	ownClient bool
	opts      scrapeOptions
	format    scrapeFormat
	devices   []Device
	keys      []string // each device's key in a scrape (see seriesKey)
	selection Selection
	simulated string // why the endpoint's GPUs are simulated; "" when they are not
	parser    expfmt.TextParser

	prevRaw    []float64 // the previous read's counters, for the stale warning
	staleCount int
	warned     bool
}

// openScrape reads the endpoint once to find its GPUs and which of
// scrapeFormats it serves, and chooses among the GPUs as opts.GPUs and
// opts.Selector say. rawURL is http(s)://HOST:PORT[/PATH], with or
// without the scrape: prefix and the scheme; without a path it is
// /metrics.
func openScrape(ctx context.Context, rawURL string, opts scrapeOptions) (Source, error) {
	u, err := scrapeURL(rawURL)
	if err != nil {
		return nil, err
	}
	spec, err := ParseGPUs(opts.GPUs)
	if err != nil {
		return nil, fmt.Errorf("energy source scrape:%s: %w", redact.URL(u), err)
	}
	sel, err := parseSelector(opts.Selector)
	if err != nil {
		return nil, fmt.Errorf("energy source scrape:%s: %w", redact.URL(u), err)
	}
	s := &scrapeSource{
		target: u.String(),
		url:    redact.URL(u),
		client: opts.HTTPClient,
		opts:   opts,
		parser: newScrapeParser(),
	}
	if s.client == nil {
		s.client, s.ownClient = &http.Client{Timeout: scrapeTimeout}, true
	}
	if err := s.open(ctx, u.Hostname(), spec, sel); err != nil {
		s.closeIdle()
		return nil, err
	}
	return s, nil
}

// open finds the first of scrapeFormats whose series, narrowed by sel,
// give some GPU a value, and chooses its GPUs per spec.
func (s *scrapeSource) open(ctx context.Context, host string, spec GPUSpec, sel labelSelector) error {
	fams, _, err := s.fetch(ctx)
	if err != nil {
		return s.errorf("%w", err)
	}
	var unmatched *scrapeFormat // the first format with GPUs, none matching sel
	for _, f := range scrapeFormats {
		series := extractSeries(fams, f, host, sel)
		if !hasValue(series, f) {
			if unmatched == nil && len(sel) > 0 && hasValue(extractSeries(fams, f, host, nil), f) {
				unmatched = &f
			}
			continue
		}
		s.format = f
		if f.uuidLabel == tokenwattScrape.uuidLabel {
			describeTokenwattGPUs(fams, series)
		}
		if err := s.choose(series, spec, sel); err != nil {
			return err
		}
		s.simulated = simulatedBy(fams, s.devices)
		return nil
	}
	if unmatched != nil {
		return s.errorf("label selector %s matches none of the GPUs' %s series, whose labels are %s",
			sel, unmatched.exporter, labelSummary(fams, *unmatched))
	}
	return s.errorf("no GPU metrics found; looked for %s, %s (tokenwatt energy-exporter, simulator) and %s, %s (dcgm-exporter)",
		tokenwattEnergyMetric, tokenwattPowerMetric, dcgmEnergyMetric, dcgmPowerMetric)
}

// tokenwattExporterInfoMetric is the info series of a tokenwatt energy
// endpoint; the simulator's says simulated="true".
const tokenwattExporterInfoMetric = "tokenwatt_energy_exporter_info"

// simulatedUUIDPrefix starts the UUIDs of the simulator's GPUs.
const simulatedUUIDPrefix = "SIM-"

// simulatedBy says why an endpoint's chosen GPUs are simulated: its
// tokenwatt_energy_exporter_info says simulated="true" (the simulator's
// /metrics), or a GPU has a simulated UUID (SIM-…, the simulator's GPUs
// re-exported, e.g. by a --sim loadgen). "" when neither.
func simulatedBy(fams map[string]*dto.MetricFamily, devs []Device) string {
	if fam := fams[tokenwattExporterInfoMetric]; fam != nil {
		for _, m := range fam.GetMetric() {
			if labelMap(m)["simulated"] == "true" {
				return tokenwattExporterInfoMetric + ` says simulated="true"`
			}
		}
	}
	for _, d := range devs {
		if strings.HasPrefix(d.UUID, simulatedUUIDPrefix) {
			return fmt.Sprintf("GPU %s is a simulated GPU", d.UUID)
		}
	}
	return ""
}

// Per-GPU identity series an energy-exporter (or a loadgen) serves
// beside the energy counter.
const (
	tokenwattGPUInfoMetric  = "tokenwatt_gpu_info"              // mig="true" when MIG mode is on
	tokenwattPowerLimMetric = "tokenwatt_gpu_power_limit_watts" // the enforced power limit
)

// describeTokenwattGPUs fills, from tokenwatt's per-GPU identity series
// (matched by uuid), what the energy series do not say: MIG mode, so a
// run reading an energy-exporter warns that a MIG GPU's energy is the
// whole GPU's, and the power limit, which bounds the glitch rule.
func describeTokenwattGPUs(fams map[string]*dto.MetricFamily, series []gpuSeries) {
	byUUID := map[string]*Device{}
	for i := range series {
		byUUID[series[i].dev.UUID] = &series[i].dev
	}
	if fam := fams[tokenwattGPUInfoMetric]; fam != nil {
		for _, m := range fam.GetMetric() {
			l := labelMap(m)
			if d := byUUID[l["uuid"]]; d != nil && l["mig"] == "true" {
				d.MIG = true
			}
		}
	}
	if fam := fams[tokenwattPowerLimMetric]; fam != nil {
		for _, m := range fam.GetMetric() {
			if d := byUUID[labelMap(m)["uuid"]]; d != nil {
				if w, ok := sampleValue(m); ok && usable(w) {
					d.PowerLimitW = w
				}
			}
		}
	}
}

// hasValue: a format counts when some GPU has a value, since
// dcgm-exporter can list a field the GPU does not support with a blank
// value.
func hasValue(series []gpuSeries, f scrapeFormat) bool {
	return slices.ContainsFunc(series, func(g gpuSeries) bool {
		return g.hasEnergy || (f.energy == "" && g.hasPower)
	})
}

// choose keeps the GPUs of series that spec names. A selector stands for
// an explicit choice: it leaves auto without a warning. The choice is
// made once: Read follows the chosen GPUs by UUID whatever labels their
// series carry later (a pod restarted under another name still runs on
// the GPU being measured).
func (s *scrapeSource) choose(series []gpuSeries, spec GPUSpec, sel labelSelector) error {
	cands := make([]gpuCandidate, len(series))
	for i, sr := range series {
		cands[i] = gpuCandidate{Device: sr.dev}
	}
	for _, id := range spec.IDs {
		if strings.HasPrefix(strings.ToUpper(id), "MIG-") {
			return s.errorf("--gpus %s: a MIG device's UUID cannot be resolved from %s's labels, which name only the physical GPU; pass the parent GPU's UUID or index (this endpoint has %s)",
				id, s.format.exporter, names(cands, nil))
		}
	}
	idx, how, err := selectGPUs(cands, spec, selectOptions{Source: s.name(), Scrape: true})
	if err != nil {
		return err
	}
	if len(sel) > 0 && len(spec.IDs) == 0 {
		how = Selection{How: "label selector"}
	}
	s.selection = how
	for _, i := range idx {
		d := series[i].dev
		// A GPU that has power but no energy series (dcgm-exporter leaves
		// out a field the GPU does not support) is integrated on its own.
		d.Integrated = s.format.energy == "" || !series[i].energySeries && series[i].hasPower
		if d.Integrated && s.format.energy != "" {
			s.logf("%s: gpu %d (%s) has no %s; its energy is integrated from %s", s.name(), d.Index, d.UUID, s.format.energy, s.format.power)
		}
		s.devices = append(s.devices, d)
		s.keys = append(s.keys, series[i].key)
	}
	s.logf("%s: %d GPU(s) from %s (%s), chosen by %s: %s; energy method %s",
		s.name(), len(idx), s.format.exporter, seriesNames(s.format), how.How, names(cands, idx), s.format.method())
	return nil
}

// labelSummary lists the labels of f's GPU series and their values, at
// most a few each, for the error of a selector that matches nothing.
func labelSummary(fams map[string]*dto.MetricFamily, f scrapeFormat) string {
	const maxValues = 4
	values := map[string][]string{}
	for _, name := range []string{f.energy, f.power} {
		for _, m := range fams[name].GetMetric() {
			for _, p := range m.GetLabel() {
				if vs := values[p.GetName()]; !slices.Contains(vs, p.GetValue()) {
					values[p.GetName()] = append(vs, p.GetValue())
				}
			}
		}
	}
	labels := slices.Sorted(maps.Keys(values))
	parts := make([]string, len(labels))
	for i, l := range labels {
		vs := values[l]
		quoted := make([]string, 0, maxValues+1)
		for _, v := range vs[:min(len(vs), maxValues)] {
			quoted = append(quoted, strconv.Quote(v))
		}
		if len(vs) > maxValues {
			quoted = append(quoted, fmt.Sprintf("(%d more)", len(vs)-maxValues))
		}
		parts[i] = l + "=" + strings.Join(quoted, "|")
	}
	return strings.Join(parts, ", ")
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
		return nil, fmt.Errorf("energy source scrape: %q is not an http(s) URL; write scrape:http://HOST:PORT/metrics", redact.Raw(raw))
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

// name is the source as errors and notices name it.
func (s *scrapeSource) name() string { return "energy source scrape:" + s.url }

// errorf is an error of opening the source, prefixed with its name.
func (s *scrapeSource) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", s.name(), fmt.Errorf(format, args...))
}

func (s *scrapeSource) logf(format string, args ...any) {
	if s.opts.Logger != nil {
		s.opts.Logger.Info(fmt.Sprintf(format, args...))
	}
}

func (s *scrapeSource) Name() string      { return SourceScrape }
func (s *scrapeSource) Method() string    { return methodOf(s.devices) }
func (s *scrapeSource) Devices() []Device { return s.devices }

// Selection is how the GPUs were chosen at open.
func (s *scrapeSource) Selection() Selection { return s.selection }

// Simulated says why the endpoint's GPUs are simulated ("" if they are
// not), as found at open.
func (s *scrapeSource) Simulated() string { return s.simulated }

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
	series := extractSeries(fams, s.format, "", nil)
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
		case d.Integrated && !sr.hasPower:
			r.Err = fmt.Errorf("GPU %d (%s): %s has no value", d.Index, d.UUID, s.format.power)
		case d.Integrated:
			r.PowerW = sr.powerW
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.target, nil)
	if err != nil {
		return nil, at, errors.New("cannot build the request") // its error would quote the URL in clear
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
	energySeries        bool // the energy metric has a series for it, blank or not
}

// extractSeries collects f's series that sel matches per GPU, ordered
// by index then key. A GPU with several series of a metric counts once,
// with their highest value: dcgm-exporter repeats device-level fields,
// energy and power among them, with the same value on each MIG instance's
// series (GPU_I_ID) and each pod's using the GPU. host stands in for a
// missing host label.
func extractSeries(fams map[string]*dto.MetricFamily, f scrapeFormat, host string, sel labelSelector) []gpuSeries {
	byKey := map[string]*gpuSeries{}
	var order []*gpuSeries
	get := func(l map[string]string) *gpuSeries {
		key := seriesKey(l, f)
		if g, ok := byKey[key]; ok {
			g.dev.MIG = g.dev.MIG || l[migInstanceLabel] != ""
			return g
		}
		g := &gpuSeries{key: key, energyJ: math.NaN(), powerW: math.NaN(), dev: Device{
			Index: -1, UUID: l[f.uuidLabel], Model: l[f.modelLabel], Hostname: host, MIG: l[migInstanceLabel] != "",
		}}
		if i, err := strconv.Atoi(l[f.gpuLabel]); err == nil && i >= 0 {
			g.dev.Index = i
		}
		for _, h := range f.hostLabels {
			if l[h] != "" {
				g.dev.Hostname = l[h]
				break
			}
		}
		byKey[key] = g
		order = append(order, g)
		return g
	}
	if f.energy != "" {
		for _, m := range fams[f.energy].GetMetric() {
			l := labelMap(m)
			if !sel.matches(l) {
				continue
			}
			g := get(l)
			g.energySeries = true
			if v, ok := sampleValue(m); ok && !(f.dcgmBlank && v >= dcgmInt64Blank) && (!g.hasEnergy || v*f.energyScale > g.energyJ) {
				g.energyJ, g.hasEnergy = v*f.energyScale, true
			}
		}
	}
	for _, m := range fams[f.power].GetMetric() {
		l := labelMap(m)
		if !sel.matches(l) {
			continue // a GPU with power but no counter is kept: it is integrated
		}
		g := get(l)
		if v, ok := sampleValue(m); ok && !(f.dcgmBlank && v >= dcgmFP64Blank) && (!g.hasPower || v > g.powerW) {
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

// migInstanceLabel is dcgm-exporter's label of a MIG GPU instance's
// series: with MIG on, every field comes once per instance.
const migInstanceLabel = "GPU_I_ID"

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
