package report

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// simulatedBanner opens the table of a simulated run (--sim, or a server or
// energy source found to be tokenwatt's simulator), so that nobody
// mistakes its numbers for a real server's.
const simulatedBanner = "SIMULATED: the target was tokenwatt's simulator (server or GPU energy), not a real inference server or GPU.\n"

// unknownCell stands for an unknown value in the table; the CSV leaves
// such cells empty, which would be invisible on a terminal.
const unknownCell = "-"

// WriteTable writes r as an aligned, human-readable table grouped into
// run, requests, latency, tokens and energy (only when an energy source
// measured it), with units in the labels or, for latencies, after the
// values (milliseconds). Numbers are rounded to four significant digits
// for reading; the CSV keeps full precision, in seconds.
func WriteTable(w io.Writer, r *Row) error { return WriteTableWith(w, r, TableOptions{}) }

// TableOptions choose what the table shows beyond the row.
type TableOptions struct {
	// Percentiles are the latency percentiles shown (0 < p < 100), in
	// order; empty is the row's 50, 90 and 99.
	Percentiles []float64
	// Quantile gives the q-quantile (0 ≤ q ≤ 1) of a distribution named
	// as in report.json (ttft, itl, e2e); needed with Percentiles.
	Quantile func(name string, q float64) (float64, bool)

	// FinishReasons and NoFinishReason, when either has a count, are
	// the ok requests by finish reason and those without one (as in
	// report.json), shown as one line: "length 48 / stop 2".
	FinishReasons  map[string]int
	NoFinishReason int

	// ClientLateness and ServerTimerLateness, when not nil, are
	// report.json's client.lateness_s and server_timer_lateness_s
	// (stamped chunks, sim --stamp-chunks), shown as "client lateness
	// p50 / p99 / max" and "simulator timer lateness p99".
	ClientLateness, ServerTimerLateness *Distribution
}

// WriteTableWith is WriteTable with o's choices.
func WriteTableWith(w io.Writer, r *Row, o TableOptions) error {
	var buf bytes.Buffer
	if r.Simulated {
		buf.WriteString(simulatedBanner)
	}
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	section := func(title string) { fmt.Fprintf(tw, "%s\t\n", title) }
	line := func(label string, values ...string) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, strings.Join(values, " / "))
	}

	section("Run")
	line("benchmark", text(r.BenchmarkName))
	line("run id", text(r.RunID))
	line("scenario", text(r.Scenario))
	line("backend", text(r.Backend))
	line("model", text(r.Model))
	line("endpoint", text(r.Endpoint))
	line("finished (UTC)", timestamp(r))

	section("Requests")
	line("total / ok / failed", strconv.Itoa(r.TotalPrompts), strconv.Itoa(r.SuccessfulPrompts), strconv.Itoa(r.FailedPrompts))
	line("warm-up, excluded", integer(r.WarmupRequests))
	line("duration (s)", Number(r.TotalDurationSeconds))
	line("rate target / sent / completed (req/s)", rate(r.RequestRate), Number(r.SendRate), Number(r.CompletionRate))
	line("concurrency", integer(r.Concurrency))
	line("arrival", text(r.Arrival))
	if len(o.FinishReasons) > 0 || o.NoFinishReason > 0 {
		line("finish reason, ok requests", finishReasons(o.FinishReasons, o.NoFinishReason))
	}
	if r.RateWarning != "" {
		line("WARNING", r.RateWarning)
	}
	if r.ClientSaturated != nil && *r.ClientSaturated {
		line("client saturated", "YES: the load generator limited this run at times; latencies may describe the client")
	}
	if r.Failures != "" {
		section("Failures (not in the latency and token figures)")
		for _, f := range strings.Fields(r.Failures) {
			outcome, n, _ := strings.Cut(f, "=")
			line(outcome, n)
		}
		line("prompt / output tokens", integer(r.FailedPromptTokens), integer(r.FailedOutputTokens))
	}

	section("Latency, ok requests")
	if len(o.Percentiles) > 0 && o.Quantile != nil {
		at := func(name string) (labels []string, values []*float64) {
			for _, p := range o.Percentiles {
				labels = append(labels, PercentileKey(p))
				if v, ok := o.Quantile(name, p/100); ok {
					values = append(values, &v)
				} else {
					values = append(values, nil)
				}
			}
			return labels, values
		}
		ls, vs := at("ttft")
		line("TTFT mean / "+strings.Join(ls, " / "), millis(append([]*float64{r.TTFTMeanSeconds}, vs...)...))
		ls, vs = at("itl")
		line("ITL "+strings.Join(ls, " / "), millis(vs...))
		line("TPOT mean", millis(r.TPOTMeanSeconds))
		ls, vs = at("e2e")
		line("E2E "+strings.Join(ls, " / "), millis(vs...))
	} else {
		line("TTFT mean / p50 / p90 / p99", millis(r.TTFTMeanSeconds, r.TTFTP50Seconds, r.TTFTP90Seconds, r.TTFTP99Seconds))
		line("ITL p50 / p90 / p99", millis(r.ITLP50Seconds, r.ITLP90Seconds, r.ITLP99Seconds))
		line("TPOT mean", millis(r.TPOTMeanSeconds))
		line("E2E p50 / p90 / p99", millis(r.E2EP50Seconds, r.E2EP90Seconds, r.E2EP99Seconds))
	}
	line("E2E mean, ok requests", millis(r.AvgLatencySeconds))
	line("schedule lag p99", millis(r.ScheduleLagP99Seconds))
	if d := o.ClientLateness; d != nil {
		line("client lateness p50 / p99 / max", millis(percentile(d, 50), percentile(d, 99), &d.Max))
	}
	if d := o.ServerTimerLateness; d != nil {
		line("simulator timer lateness p99", millis(percentile(d, 99)))
	}

	section("Tokens, ok requests")
	line("prompt / output / total", integer(r.TotalPromptTokens), integer(r.TotalCompletionTokens), integer(r.TotalTokens))
	line("output throughput (tok/s)", Number(r.OutputThroughputTokensPerSecond))
	line("prompt+output throughput (tok/s)", Number(r.ThroughputTokensPerSecond))

	if r.SLO != "" {
		section("SLO " + termtext.Escape(r.SLO))
		line("met / missed", sloMet(r))
		line("goodput (req/s) / (output tok/s)", Number(r.GoodputRequestsPerSecond), Number(r.GoodputOutputTokensPerSecond))
		if hasEnergy(r) {
			line("J per SLO-meeting output token", Number(r.JoulesPerSLOOutputToken))
		}
	}

	// Without an energy source there is nothing to show but dashes, and
	// a carbon intensity that applies to no energy.
	if hasEnergy(r) {
		section("Energy")
		line("source / method", text(r.EnergySource), text(r.EnergyMethod))
		line("GPUs", gpus(r))
		if r.EnergyWarning != "" {
			line("WARNING", r.EnergyWarning)
		}
		line("GPU energy / active (Wh)", Number(r.GPUEnergyWh), Number(r.ActiveEnergyWh))
		line("power avg / peak / idle (W)", Number(r.AvgPowerW), Number(r.PeakPowerW), Number(r.IdlePowerW))
		line("energy per output token (J)", Number(r.JoulesPerOutputToken))
		line("energy per 1000 queries (Wh)", Number(r.WhPer1000Queries))
		line("carbon intensity (g/kWh)", Number(r.CarbonIntensityGPerKWh))
		line("emissions (g CO2eq)", Number(r.EmissionsGCO2eq))
	}

	if err := tw.Flush(); err != nil {
		return fmt.Errorf("format summary table: %w", err)
	}
	// tabwriter pads section titles to the label column's width; the
	// padding would only be trailing blanks.
	var out bytes.Buffer
	for l := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(l, " \n"))
		out.WriteByte('\n')
	}
	if _, err := w.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write summary table: %w", err)
	}
	return nil
}

// percentile is d's percentile p (one of ReportPercentiles); nil when
// it has none.
func percentile(d *Distribution, p float64) *float64 {
	v, ok := d.Percentiles[PercentileKey(p)]
	if !ok {
		return nil
	}
	return &v
}

// finishReasons is "length 48 / stop 2 / none given 1": the most
// frequent first, ties by name; a server's reasons escaped.
func finishReasons(counts map[string]int, none int) string {
	reasons := make([]string, 0, len(counts))
	for k := range counts {
		reasons = append(reasons, k)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	cells := make([]string, 0, len(reasons)+1)
	for _, k := range reasons {
		cells = append(cells, termtext.Escape(k)+" "+strconv.Itoa(counts[k]))
	}
	if none > 0 {
		cells = append(cells, "none given "+strconv.Itoa(none))
	}
	return strings.Join(cells, " / ")
}

// sloMet is "95 / 5 (95.0 %)": the requests that met the SLO, those
// that did not, and the share that did.
func sloMet(r *Row) string {
	if r.SLOMetRequests == nil {
		return unknownCell
	}
	met := *r.SLOMetRequests
	s := fmt.Sprintf("%d / %d", met, r.TotalPrompts-met)
	if r.TotalPrompts > 0 {
		s += fmt.Sprintf(" (%.1f %%)", 100*float64(met)/float64(r.TotalPrompts))
	}
	return s
}

// hasEnergy reports whether the run measured GPU energy.
func hasEnergy(r *Row) bool { return r.EnergySource != "" && r.EnergySource != "none" }

// gpus is the GPU count, how they were chosen and their UUIDs.
func gpus(r *Row) string {
	s := integer(r.GPUs)
	if r.GPUSelection != "" {
		s += " (" + r.GPUSelection + ")"
	}
	if r.GPUUUIDs != "" {
		s += ": " + r.GPUUUIDs
	}
	return termtext.Escape(s)
}

// text is a text cell: a server's model name or a remote GPU's UUID can
// hold control characters, which are escaped (termtext.Escape).
func text(s string) string {
	if s == "" {
		return unknownCell
	}
	return termtext.Escape(s)
}

func timestamp(r *Row) string {
	if r.Timestamp.IsZero() {
		return unknownCell
	}
	return r.Timestamp.UTC().Format(timestampLayout)
}

func integer[T ~int | ~int64](p *T) string {
	if p == nil {
		return unknownCell
	}
	return strconv.FormatInt(int64(*p), 10)
}

// rate spells out what a configured rate of 0 means.
func rate(p *float64) string {
	if p != nil && *p == 0 {
		return "0 (closed loop)"
	}
	return Number(p)
}

// Number rounds to four significant digits without exponent notation:
// enough to compare runs by eye, short enough to scan; "-" when unknown
// (nil, NaN or infinite). The run's table, sweep's and compare's use it.
func Number(p *float64) string {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return unknownCell
	}
	v := *p
	if v == 0 {
		return "0"
	}
	decimals := 3 - int(math.Floor(math.Log10(math.Abs(v))))
	return strconv.FormatFloat(v, 'f', max(0, min(decimals, 9)), 64)
}

// millis writes latencies given in seconds as milliseconds, "a / b / c ms",
// each to three significant digits (no exponent; at most six decimals).
// The unit follows the last value when any is known.
func millis(ps ...*float64) string {
	cells := make([]string, len(ps))
	known := false
	for i, p := range ps {
		cells[i] = Milliseconds(p)
		known = known || cells[i] != unknownCell
	}
	s := strings.Join(cells, " / ")
	if known {
		s += " ms"
	}
	return s
}

// Milliseconds writes a latency given in seconds as milliseconds to three
// significant digits (no exponent; at most six decimals), without the
// unit; "-" when unknown (nil, NaN or infinite).
func Milliseconds(p *float64) string {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return unknownCell
	}
	ms := *p * 1000
	if ms == 0 {
		return "0"
	}
	// Three significant digits of the value rounded to three significant
	// digits: 99.96 is "100", not "100.0".
	decimals := 2 - int(math.Floor(math.Log10(math.Abs(ms))))
	scale := math.Pow10(decimals)
	decimals = 2 - int(math.Floor(math.Log10(math.Abs(math.Round(ms*scale)/scale))))
	return strconv.FormatFloat(ms, 'f', max(0, min(decimals, 6)), 64)
}
