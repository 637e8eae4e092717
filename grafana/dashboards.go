// Package grafana defines tokenwatt's Grafana dashboards as Go code, with
// github.com/grafana/grafana-foundation-sdk, and renders them to the JSON
// files in grafana/dashboards/ that Grafana's file provisioning loads.
//
// Edit the dashboards here, then run `go generate ./grafana`; a test fails
// while the committed JSON differs from what this package generates.
//
// Every query reads the Prometheus datasource provisioned with uid
// DatasourceUID (grafana/provisioning/datasources/tokenwatt.yml), mostly
// through the recording rules in prometheus/rules/tokenwatt.rules.yml, so
// those rules must be loaded (prometheus/prometheus.yml loads them).
package grafana

//lint:file-ignore SA1019 The SDK marks the classic dashboard schema deprecated in favour of dashboardv2, but file provisioning (grafana/provisioning/dashboards) loads the classic JSON model on every Grafana in use, while v2 needs Grafana 12 with its new-dashboard feature toggles.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DatasourceUID is the uid of the provisioned Prometheus datasource, the
// only datasource the dashboards use.
const DatasourceUID = "tokenwatt-prometheus"

// Dashboard is one generated dashboard and the file it is written to.
type Dashboard struct {
	File      string // base name in grafana/dashboards/
	Dashboard dashboard.Dashboard
}

// Dashboards builds every shipped dashboard.
func Dashboards() ([]Dashboard, error) {
	builders := []struct {
		file string
		b    *dashboard.DashboardBuilder
	}{
		{"energy-overview.json", energyOverview()},
		{"latency.json", latency()},
		{"soak-regressions.json", soak()},
		{"compare-runs.json", compareRuns()},
	}
	out := make([]Dashboard, 0, len(builders))
	for _, x := range builders {
		d, err := x.b.Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", x.file, err)
		}
		numberPanels(&d)
		out = append(out, Dashboard{File: x.file, Dashboard: d})
	}
	return out, nil
}

// Render is the file content of d: indented JSON and a final newline.
func Render(d dashboard.Dashboard) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	// PromQL has <, > and &: keep them readable in the file.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// numberPanels gives panels ids in layout order, so that links to a panel
// (viewPanel=N) stay stable across regenerations.
func numberPanels(d *dashboard.Dashboard) {
	for i, p := range d.Panels {
		id := uint32(i + 1)
		switch {
		case p.Panel != nil:
			p.Panel.Id = &id
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
}

func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(DatasourceUID)}
}

// Selectors used by the queries. Variables are multi-value with an "All"
// of ".*", so they are always matched with =~.
const (
	run = `run_id=~"$run_id"`
	gpu = `gpu=~"$gpu"`
)

// query is a range query of the panel; legend is Grafana's legend format.
func query(ref, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource()).
		RefId(ref).
		Expr(expr).
		LegendFormat(legend).
		Range()
}

// quantile is the q-quantile of a histogram metric by the labels in by,
// from the native histogram and, when the server has none (a Prometheus
// without native histograms, VictoriaMetrics fed by --push-url), from the
// classic _bucket series; the recording rules do the same.
func quantile(q float64, metric, by, sel, window string) string {
	return fmt.Sprintf(`histogram_quantile(%g, sum by (%s) (rate(%s{%s}[%s])))`+
		"\n  or\n"+
		`histogram_quantile(%g, sum by (%s, le, vmrange) (rate(%s_bucket{%s}[%s])))`,
		q, by, metric, sel, window, q, by, metric, sel, window)
}

// queryVariable is a dashboard variable whose values the query q lists,
// refreshed when the time range changes.
func queryVariable(name, label, q, description string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Description(description).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged)
}

func variables() []cog.Builder[dashboard.VariableModel] {
	v := func(name, label, q, description string) *dashboard.QueryVariableBuilder {
		return queryVariable(name, label, q, description).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*").
			Current(dashboard.VariableOption{
				Selected: cog.ToPtr(true),
				Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
				Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
			})
	}
	return []cog.Builder[dashboard.VariableModel]{
		v("scenario", "Scenario", `label_values(tokenwatt_run_info, scenario)`,
			"Scenario of the loadgen runs (tokenwatt_run_info).").Sort(dashboard.VariableSortAlphabeticalAsc),
		v("model", "Model", `label_values(tokenwatt_run_info{scenario=~"$scenario"}, model)`,
			"Model requested by the runs of the chosen scenarios."),
		v("run_id", "Run", `label_values(tokenwatt_run_info{scenario=~"$scenario", model=~"$model"}, run_id)`,
			"loadgen runs (--run-id) of the chosen scenarios and models; panels filter on these."),
		v("gpu", "GPU", `label_values(tokenwatt_gpu_energy_joules_total, gpu)`,
			"GPU index, for the per-GPU panels (energy-exporter or the loadgen's own energy source)."),
	}
}

// runAnnotations mark each run's start and end on the time axis, from the
// loadgen's tokenwatt_run_start/end_timestamp_seconds gauges (the value is
// the time).
func runAnnotations() []cog.Builder[dashboard.AnnotationQuery] { return runAnnotationsFor(run) }

// runAnnotationsFor is runAnnotations for the runs matching sel.
func runAnnotationsFor(sel string) []cog.Builder[dashboard.AnnotationQuery] {
	a := func(name, metric, color, title string) *dashboard.AnnotationQueryBuilder {
		expr := fmt.Sprintf(`max by (run_id, scenario, model) (%s{%s}) * 1000`, metric, sel)
		return dashboard.NewAnnotationQueryBuilder().
			Name(name).
			Datasource(datasource()).
			Enable(true).
			IconColor(color).
			Target(prometheus.NewDataqueryBuilder().Datasource(datasource()).RefId("Anno").Expr(expr).Range()).
			Expr(expr).
			Step("60s").
			UseValueForTime(true).
			TitleFormat(title).
			TextFormat("scenario {{scenario}}, model {{model}}").
			TagKeys("run_id,scenario")
	}
	return []cog.Builder[dashboard.AnnotationQuery]{
		a("Run start", "tokenwatt_run_start_timestamp_seconds", "green", "run {{run_id}} started"),
		a("Run end", "tokenwatt_run_end_timestamp_seconds", "red", "run {{run_id}} ended"),
	}
}

// base is what every dashboard shares: uid, title, tags, time range,
// refresh, variables and run annotations.
func base(uid, title, description, from string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"tokenwatt"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time(from, "now").
		Timezone(common.TimeZoneBrowser).
		Refresh("30s").
		Variables(variables()).
		Annotations(runAnnotations()).
		Link(dashboard.NewDashboardLinkBuilder("tokenwatt").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"tokenwatt"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true))
}

func ts(title, description, unit string, w, h uint32, targets ...cog.Builder[variants.Dataquery]) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Unit(unit).
		Span(w).
		Height(h).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for _, t := range targets {
		p.WithTarget(t)
	}
	return p
}

func statPanel(title, description, unit string, decimals float64, target cog.Builder[variants.Dataquery]) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Unit(unit).
		Decimals(decimals).
		Span(4).
		Height(4).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(target)
}

func heat(title, description, metric string) *heatmap.PanelBuilder {
	// sum(rate(native)) is a native histogram, which Grafana draws as a
	// heatmap; "or on ()" adds the classic buckets only when there is none.
	expr := fmt.Sprintf("sum(rate(%s{%s}[$__rate_interval]))\n  or on ()\nsum by (le) (rate(%s_bucket{%s}[$__rate_interval]))", metric, run, metric, run)
	return heatmap.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Span(12).
		Height(8).
		Calculate(false).
		YAxis(heatmap.NewYAxisConfigBuilder().Unit("s")).
		CellGap(1).
		Color(heatmap.NewHeatmapColorOptionsBuilder().
			Mode(heatmap.HeatmapColorModeScheme).
			Scheme("Oranges").
			Scale(heatmap.HeatmapColorScaleExponential).
			Exponent(0.5).
			Steps(64)).
		WithTarget(prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId("A").
			Expr(expr).
			Format(prometheus.PromQueryFormatHeatmap).
			LegendFormat("{{le}}").
			Range())
}

func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }

// energyOverview: what a token costs in energy, and where the energy goes.
func energyOverview() *dashboard.DashboardBuilder {
	return base("tokenwatt-energy", "tokenwatt / Energy overview",
		"GPU energy per output token and per query, power per GPU, the energy split between prefill, decode and idle, CO2 and throughput. Run start/end annotations come from the loadgen.",
		"now-1h").
		WithRow(row("Cost of a token")).
		WithPanel(statPanel("J per output token", "Attributed GPU energy over output tokens, 5m (run_id:tokenwatt_joules_per_output_token:ratio_rate5m).", "J", 3,
			query("A", `run_id:tokenwatt_joules_per_output_token:ratio_rate5m{`+run+`}`, "{{run_id}}"))).
		WithPanel(statPanel("Wh per 1,000 queries", "Attributed GPU energy per 1,000 successful requests, 5m.", "watth", 2,
			query("A", `run_id:tokenwatt_wh_per_1000_queries:ratio_rate5m{`+run+`}`, "{{run_id}}"))).
		WithPanel(statPanel("Output tokens/s", "Output tokens per second of measured requests, 5m.", "short", 1,
			query("A", `run_id:tokenwatt_output_tokens:rate5m{`+run+`}`, "{{run_id}}"))).
		WithPanel(statPanel("Attributed power", "Run-window GPU energy per second (prefill + decode + idle), 5m.", "watt", 0,
			query("A", `run_id:tokenwatt_attributed_energy_joules:rate5m{`+run+`}`, "{{run_id}}"))).
		WithPanel(statPanel("Energy in range", "GPU energy attributed to the selected runs over the dashboard's time range.", "watth", 2,
			query("A", `sum(increase(tokenwatt_attributed_energy_joules_total{`+run+`}[$__range])) / 3600`, "Wh").Instant())).
		WithPanel(statPanel("CO2 in range", "Attributed energy over the time range times the configured grid carbon intensity (tokenwatt_carbon_intensity_grams_per_kwh).", "massg", 1,
			query("A", `sum(
  sum by (run_id) (increase(tokenwatt_attributed_energy_joules_total{`+run+`}[$__range])) / 3.6e6
    * on (run_id)
  max by (run_id) (max_over_time(tokenwatt_carbon_intensity_grams_per_kwh{`+run+`}[$__range]))
)`, "g CO2eq").Instant())).
		WithPanel(ts("J per output token", "5m attributed GPU energy over output tokens, per run; the cluster-wide line needs no loadgen: dcgm-exporter's (or tokenwatt's) GPU energy over vLLM's generation tokens.", "J", 12, 8,
			query("A", `run_id:tokenwatt_joules_per_output_token:ratio_rate5m{`+run+`}`, "{{run_id}}"),
			query("B", `cluster:vllm_joules_per_generation_token:ratio_rate5m`, "cluster (vLLM tokens)"))).
		WithPanel(ts("Wh per 1,000 queries", "5m attributed GPU energy per 1,000 successful requests.", "watth", 12, 8,
			query("A", `run_id:tokenwatt_wh_per_1000_queries:ratio_rate5m{`+run+`}`, "{{run_id}}"))).
		WithRow(row("Power")).
		WithPanel(ts("Power per GPU", "Latest sampled power per GPU, beside its idle baseline (measured before a run; dashed).", "watt", 12, 8,
			query("A", `max by (hostname, gpu) (tokenwatt_gpu_power_watts{`+gpu+`})`, "{{hostname}} GPU {{gpu}}"),
			query("B", `max by (hostname, gpu) (tokenwatt_gpu_idle_power_watts{`+gpu+`})`, "{{hostname}} GPU {{gpu}} idle baseline")).
			OverrideByQuery("B", []dashboard.DynamicConfigValue{{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}}})).
		WithPanel(ts("Average power per GPU", "GPU energy counter's rate over 5m, W (hostname_gpu:tokenwatt_gpu_energy_joules:rate5m); the total is every GPU together.", "watt", 12, 8,
			query("A", `hostname_gpu:tokenwatt_gpu_energy_joules:rate5m{`+gpu+`}`, "{{hostname}} GPU {{gpu}}"),
			query("B", `cluster:tokenwatt_gpu_energy_joules:rate5m`, "all GPUs"))).
		WithRow(row("Where the energy goes")).
		WithPanel(ts("Energy split: prefill, decode, idle", "Run-window GPU energy per second by phase: prefill and decode of requests, idle when none was in flight (stacked, W).", "watt", 12, 8,
			query("A", `sum by (phase) (rate(tokenwatt_attributed_energy_joules_total{`+run+`}[$__rate_interval]))`, "{{phase}}")).
			FillOpacity(40).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))).
		WithPanel(ts("Energy share by phase", "Share of attributed energy by phase, 5m (run_id_phase:tokenwatt_attributed_energy_joules:ratio_rate5m).", "percentunit", 12, 8,
			query("A", `run_id_phase:tokenwatt_attributed_energy_joules:ratio_rate5m{`+run+`}`, "{{run_id}} {{phase}}")).
			Min(0).Max(1)).
		WithRow(row("Throughput and emissions")).
		WithPanel(ts("Tokens/s", "Output and prompt tokens per second of measured requests.", "short", 12, 8,
			query("A", `run_id:tokenwatt_output_tokens:rate5m{`+run+`}`, "{{run_id}} output"),
			query("B", `sum by (run_id) (rate(tokenwatt_prompt_tokens_total{`+run+`}[$__rate_interval]))`, "{{run_id}} prompt"))).
		WithPanel(ts("CO2 rate", "Attributed GPU energy times the run's grid carbon intensity: grams CO2eq per hour.", "massg", 12, 8,
			query("A", `sum by (run_id) (rate(tokenwatt_attributed_energy_joules_total{`+run+`}[$__rate_interval])) * 3600 / 3.6e6
  * on (run_id)
max by (run_id) (tokenwatt_carbon_intensity_grams_per_kwh{`+run+`})`, "{{run_id}} g CO2eq/h")))
}

// latency: the request timing metrics, schedule lag and errors.
func latency() *dashboard.DashboardBuilder {
	pcts := func(metric, record string) []cog.Builder[variants.Dataquery] {
		var qs []cog.Builder[variants.Dataquery]
		for i, q := range []struct {
			name string
			v    float64
		}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}} {
			expr := quantile(q.v, metric, "run_id", run, "$__rate_interval")
			if record != "" {
				// The recording rule, over 5m.
				expr = fmt.Sprintf("run_id:%s:%s_rate5m{%s}", record, q.name, run)
			}
			qs = append(qs, query(string(rune('A'+i)), expr, "{{run_id}} "+q.name))
		}
		return qs
	}
	return base("tokenwatt-latency", "tokenwatt / Latency",
		"Time to first token, inter-token latency, time per output token and end-to-end latency from the loadgen's histograms (native, else classic buckets), with schedule lag, requests in flight and errors by outcome.",
		"now-1h").
		WithRow(row("Percentiles")).
		WithPanel(ts("TTFT p50 / p90 / p99", "Time to first token (first text-carrying chunk minus send), 5m recording rules.", "s", 12, 8,
			pcts("tokenwatt_request_ttft_seconds", "tokenwatt_request_ttft_seconds")...)).
		WithPanel(ts("ITL p50 / p90 / p99", "Inter-token latency: each gap between text-carrying chunks, 5m recording rules.", "s", 12, 8,
			pcts("tokenwatt_request_itl_seconds", "tokenwatt_request_itl_seconds")...)).
		WithPanel(ts("TPOT p50 / p90 / p99", "Time per output token: (last chunk - first chunk) / (output tokens - 1).", "s", 12, 8,
			pcts("tokenwatt_request_tpot_seconds", "")...)).
		WithPanel(ts("E2E p50 / p90 / p99", "End-to-end latency: last text-carrying chunk minus send.", "s", 12, 8,
			pcts("tokenwatt_request_duration_seconds", "")...)).
		WithRow(row("Distributions")).
		WithPanel(heat("TTFT heatmap", "Time to first token, per rate interval.", "tokenwatt_request_ttft_seconds")).
		WithPanel(heat("ITL heatmap", "Inter-token gaps, per rate interval.", "tokenwatt_request_itl_seconds")).
		WithRow(row("Load and errors")).
		WithPanel(ts("Requests/s by outcome", "Completed requests per second by outcome, 5m.", "reqps", 12, 8,
			query("A", `run_id_outcome:tokenwatt_requests:rate5m{`+run+`}`, "{{run_id}} {{outcome}}"))).
		WithPanel(ts("Error ratio by outcome", "Share of completed requests per failing outcome (http_4xx, http_5xx, timeout, canceled, stream_error, connect_error); the total is the alerting rule's ratio.", "percentunit", 12, 8,
			query("A", `sum by (run_id, outcome) (rate(tokenwatt_requests_total{`+run+`, outcome!="ok"}[$__rate_interval]))
  / on (run_id) group_left ()
(sum by (run_id) (rate(tokenwatt_requests_total{`+run+`}[$__rate_interval])) > 0)`, "{{run_id}} {{outcome}}"),
			query("B", `run_id:tokenwatt_request_errors:ratio_rate5m{`+run+`}`, "{{run_id}} all errors (5m)")).
			Min(0)).
		WithPanel(ts("Requests in flight", "Measured requests sent and not yet completed.", "short", 12, 8,
			query("A", `sum by (run_id) (tokenwatt_requests_in_flight{`+run+`})`, "{{run_id}}"))).
		WithPanel(ts("Schedule lag p50 / p99", "Send minus intended send time (open loop; 0 in closed loop). Rising lag means the loadgen, not the server, is short of capacity.", "s", 12, 8,
			query("A", quantile(0.5, "tokenwatt_request_schedule_lag_seconds", "run_id", run, "$__rate_interval"), "{{run_id}} p50"),
			query("B", `run_id:tokenwatt_request_schedule_lag_seconds:p99_rate5m{`+run+`}`, "{{run_id}} p99 (5m)")))
}

// soak: long-window trends and energy regressions against the 7-day
// baseline the alerts use.
func soak() *dashboard.DashboardBuilder {
	regression := func(title, description, rec5m, rec1h, unit string) (*timeseries.PanelBuilder, *timeseries.PanelBuilder) {
		values := ts(title, description, unit, 12, 8,
			query("A", rec1h+`{`+run+`}`, "{{run_id}} 1h"),
			query("B", `avg_over_time(`+rec1h+`{`+run+`}[7d])`, "{{run_id}} 7-day baseline"))
		ratio := ts(title+" / baseline", "5m value over the 7-day baseline; the regression alert fires above 1.10 for 30m (its baseline also leaves out the last hour).", "percentunit", 12, 8,
			query("A", rec5m+`{`+run+`}
  /
avg_over_time(`+rec1h+`{`+run+`}[7d])`, "{{run_id}}")).
			Thresholds(dashboard.NewThresholdsConfigBuilder().
				Mode(dashboard.ThresholdsModeAbsolute).
				Steps([]dashboard.Threshold{{Color: "green"}, {Value: cog.ToPtr(1.10), Color: "red"}})).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLineAndArea))
		return values, ratio
	}
	jVals, jRatio := regression("J per output token vs 7-day baseline",
		"Hourly J per output token (run_id:tokenwatt_joules_per_output_token:ratio_rate1h) and its 7-day mean.",
		"run_id:tokenwatt_joules_per_output_token:ratio_rate5m", "run_id:tokenwatt_joules_per_output_token:ratio_rate1h", "J")
	whVals, whRatio := regression("Wh per 1,000 queries vs 7-day baseline",
		"Hourly Wh per 1,000 successful queries and its 7-day mean.",
		"run_id:tokenwatt_wh_per_1000_queries:ratio_rate5m", "run_id:tokenwatt_wh_per_1000_queries:ratio_rate1h", "watth")
	alerts := func(state string) cog.Builder[variants.Dataquery] {
		return query("A", `count(ALERTS{alertname=~"Tokenwatt.*", alertstate="`+state+`"}) or vector(0)`, state)
	}
	return base("tokenwatt-soak", "tokenwatt / Soak & regressions",
		"Energy per token and per query against their own 7-day baselines (what the regression alerts compare), tokenwatt alert state, and hourly trends for long soak runs.",
		"now-7d").
		WithRow(row("Alerts")).
		WithPanel(statPanel("Firing alerts", "tokenwatt alerts firing now (prometheus/rules/tokenwatt.alerts.yml); Alertmanager routes them.", "short", 0, alerts("firing")).
			ColorMode(common.BigValueColorModeBackground).
			Thresholds(dashboard.NewThresholdsConfigBuilder().
				Mode(dashboard.ThresholdsModeAbsolute).
				Steps([]dashboard.Threshold{{Color: "green"}, {Value: cog.ToPtr(1.0), Color: "red"}}))).
		WithPanel(statPanel("Pending alerts", "tokenwatt alerts whose condition holds but not yet for their 'for' duration.", "short", 0, alerts("pending")).
			ColorMode(common.BigValueColorModeBackground).
			Thresholds(dashboard.NewThresholdsConfigBuilder().
				Mode(dashboard.ThresholdsModeAbsolute).
				Steps([]dashboard.Threshold{{Color: "green"}, {Value: cog.ToPtr(1.0), Color: "orange"}}))).
		WithPanel(ts("Alert state over time", "Number of tokenwatt alerts firing and pending.", "short", 16, 4,
			query("A", `count(ALERTS{alertname=~"Tokenwatt.*", alertstate="firing"}) or vector(0)`, "firing"),
			query("B", `count(ALERTS{alertname=~"Tokenwatt.*", alertstate="pending"}) or vector(0)`, "pending"))).
		WithRow(row("Energy regressions")).
		WithPanel(jVals).
		WithPanel(jRatio).
		WithPanel(whVals).
		WithPanel(whRatio).
		WithRow(row("Hourly trends")).
		WithPanel(ts("Output tokens/s (1h)", "Hourly output token rate.", "short", 8, 8,
			query("A", `run_id:tokenwatt_output_tokens:rate1h{`+run+`}`, "{{run_id}}"))).
		WithPanel(ts("TTFT p99 and ITL p99 (1h)", "Hourly p99 time to first token and inter-token latency.", "s", 8, 8,
			query("A", `run_id:tokenwatt_request_ttft_seconds:p99_rate1h{`+run+`}`, "{{run_id}} TTFT p99"),
			query("B", `run_id:tokenwatt_request_itl_seconds:p99_rate1h{`+run+`}`, "{{run_id}} ITL p99"))).
		WithPanel(ts("Error ratio (1h)", "Hourly share of requests not ok.", "percentunit", 8, 8,
			query("A", `run_id:tokenwatt_request_errors:ratio_rate1h{`+run+`}`, "{{run_id}}"))).
		WithPanel(ts("Average power (1h)", "Hourly average power of all GPUs together and per GPU.", "watt", 8, 8,
			query("A", `cluster:tokenwatt_gpu_energy_joules:rate1h`, "all GPUs"),
			query("B", `hostname_gpu:tokenwatt_gpu_energy_joules:rate1h{`+gpu+`}`, "{{hostname}} GPU {{gpu}}"))).
		WithPanel(ts("Cluster J per generated token (1h)", "Without a loadgen: GPU energy (dcgm-exporter, else tokenwatt) over vLLM's vllm:generation_tokens_total, hourly.", "J", 8, 8,
			query("A", `cluster:vllm_joules_per_generation_token:ratio_rate1h`, "cluster"))).
		WithPanel(ts("Schedule lag p99 (1h)", "Hourly p99 of send minus intended send; above 50 ms for 10m fires TokenwattLoadgenBehindSchedule.", "s", 8, 8,
			query("A", `run_id:tokenwatt_request_schedule_lag_seconds:p99_rate1h{`+run+`}`, "{{run_id}}")))
}

// instant is an instant query at the end of the dashboard's range.
func instant(ref, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource()).
		RefId(ref).
		Expr(expr).
		LegendFormat(legend).
		Instant()
}

// compareRuns sets two chosen runs side by side: their whole-run figures
// over the dashboard's time range (which must hold both runs), and the
// new run's over the base run's. A sweep's points and the runs of
// `loadgen compare` carry run_id and scenario like any run, so any two
// can be chosen.
func compareRuns() *dashboard.DashboardBuilder {
	single := func(name, label, description string) *dashboard.QueryVariableBuilder {
		return queryVariable(name, label, `label_values(tokenwatt_run_info{scenario=~"$scenario"}, run_id)`, description).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(false).
			IncludeAll(false)
	}
	scenarioVar := queryVariable("scenario", "Scenario", `label_values(tokenwatt_run_info, scenario)`,
		"Scenario of the runs to choose from (tokenwatt_run_info).").
		Multi(true).
		IncludeAll(true).
		AllValue(".*")
	// Whole-run figures of run $v: increase() over the range is the run's
	// own total when the range holds it.
	jPerToken := func(v string) string {
		return `sum(increase(tokenwatt_attributed_energy_joules_total{run_id="$` + v + `"}[$__range]))
  /
sum(increase(tokenwatt_output_tokens_total{run_id="$` + v + `"}[$__range]))`
	}
	duration := func(v string) string {
		return `(max(last_over_time(tokenwatt_run_end_timestamp_seconds{run_id="$` + v + `"}[$__range]))
  - min(last_over_time(tokenwatt_run_start_timestamp_seconds{run_id="$` + v + `"}[$__range])))`
	}
	tokensPerSecond := func(v string) string {
		return `sum(increase(tokenwatt_output_tokens_total{run_id="$` + v + `"}[$__range])) / ` + duration(v)
	}
	powerW := func(v string) string {
		return `sum(increase(tokenwatt_attributed_energy_joules_total{run_id="$` + v + `"}[$__range])) / ` + duration(v)
	}
	q := func(quant float64, metric, v string) string {
		return fmt.Sprintf(`histogram_quantile(%g, sum(increase(%s{run_id="$%s"}[$__range])))`+
			"\n  or\n"+
			`histogram_quantile(%g, sum by (le, vmrange) (increase(%s_bucket{run_id="$%s"}[$__range])))`,
			quant, metric, v, quant, metric, v)
	}
	pair := func(title, description, unit string, decimals float64, expr func(v string) string) *stat.PanelBuilder {
		return stat.NewPanelBuilder().
			Title(title).
			Description(description).
			Datasource(datasource()).
			Unit(unit).
			Decimals(decimals).
			Span(6).
			Height(5).
			GraphMode(common.BigValueGraphModeNone).
			ColorMode(common.BigValueColorModeNone).
			TextMode(common.BigValueTextModeValueAndName).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(instant("A", expr("base"), "base $base")).
			WithTarget(instant("B", expr("new"), "new $new"))
	}
	ratio := func(title, description string, expr func(v string) string, higherIsWorse bool) *stat.PanelBuilder {
		steps := []dashboard.Threshold{{Color: "green"}, {Value: cog.ToPtr(1.05), Color: "orange"}, {Value: cog.ToPtr(1.10), Color: "red"}}
		if !higherIsWorse {
			steps = []dashboard.Threshold{{Color: "red"}, {Value: cog.ToPtr(0.90), Color: "orange"}, {Value: cog.ToPtr(0.95), Color: "green"}}
		}
		return stat.NewPanelBuilder().
			Title(title).
			Description(description).
			Datasource(datasource()).
			Unit("percentunit").
			Decimals(1).
			Span(6).
			Height(5).
			GraphMode(common.BigValueGraphModeNone).
			ColorMode(common.BigValueColorModeBackground).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(instant("A", "("+expr("new")+")\n  /\n("+expr("base")+")", "new / base"))
	}
	ttftP99 := func(v string) string { return q(0.99, "tokenwatt_request_ttft_seconds", v) }
	ttftP50 := func(v string) string { return q(0.5, "tokenwatt_request_ttft_seconds", v) }
	e2eP99 := func(v string) string { return q(0.99, "tokenwatt_request_duration_seconds", v) }
	itlP50 := func(v string) string { return q(0.5, "tokenwatt_request_itl_seconds", v) }
	return dashboard.NewDashboardBuilder("tokenwatt / Compare two runs").
		Uid("tokenwatt-compare").
		Description("Two chosen runs side by side (a base and a new one: two sweep points, a before and an after), each figure over the whole run, and the new run's over the base run's. The time range must hold both runs. For a verdict with confidence intervals, use `loadgen compare BASE NEW` on their run directories.").
		Tags([]string{"tokenwatt"}).
		Editable().
		Time("now-24h", "now").
		Timezone(common.TimeZoneBrowser).
		Variables([]cog.Builder[dashboard.VariableModel]{
			scenarioVar,
			single("base", "Base run", "The run to compare against."),
			single("new", "New run", "The run compared with the base."),
		}).
		Annotations(runAnnotationsFor(`run_id=~"$base|$new"`)).
		Link(dashboard.NewDashboardLinkBuilder("tokenwatt").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"tokenwatt"}).
			AsDropdown(true).
			IncludeVars(false).
			KeepTime(true)).
		WithRow(row("New over base")).
		WithPanel(ratio("J per output token, new / base", "Above 1: the new run spends more energy per output token. Orange from +5 %, red from +10 % (the regression alert's threshold).", jPerToken, true)).
		WithPanel(ratio("TTFT p99, new / base", "Above 1: the new run's p99 time to first token is slower.", ttftP99, true)).
		WithPanel(ratio("E2E p99, new / base", "Above 1: the new run's p99 end-to-end latency is slower.", e2eP99, true)).
		WithPanel(ratio("Output tokens/s, new / base", "Below 1: the new run generated fewer output tokens per second of its window.", tokensPerSecond, false)).
		WithRow(row("Side by side")).
		WithPanel(pair("J per output token", "Attributed GPU energy over output tokens of successful requests, whole run.", "J", 3, jPerToken)).
		WithPanel(pair("Output tokens/s", "Output tokens of successful requests over the run window (start to end timestamps).", "short", 1, tokensPerSecond)).
		WithPanel(pair("Average power (W)", "Attributed GPU energy over the run window.", "watt", 1, powerW)).
		WithPanel(pair("TTFT p50", "Median time to first token over the whole run.", "s", 4, ttftP50)).
		WithPanel(pair("TTFT p99", "p99 time to first token over the whole run.", "s", 4, ttftP99)).
		WithPanel(pair("ITL p50", "Median inter-token latency over the whole run.", "s", 4, itlP50)).
		WithPanel(pair("E2E p99", "p99 end-to-end latency over the whole run.", "s", 4, e2eP99))
}
