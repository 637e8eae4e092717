package sweep

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/tokenwatt/tokenwatt/internal/termtext"
	"github.com/tokenwatt/tokenwatt/report"
)

// WriteTable writes the sweep as one line per point: its load, achieved
// and completed rates, output tokens per second, TTFT, TPOT and E2E
// (p50 and p99, milliseconds), the frontier's latency, J/output token,
// average power and SLO goodput; a point on the frontier is marked *.
// Then why the sweep stopped and the frontier, by rising latency.
func WriteTable(w io.Writer, s *Sweep) error {
	var buf bytes.Buffer
	if s.Simulated {
		buf.WriteString("SIMULATED: the target was tokenwatt's simulator (server or GPU energy), not a real inference server or GPU.\n")
	}
	fmt.Fprintf(&buf, "Sweep %s: %s, %d of %d points\n", termtext.Escape(s.SweepID), termtext.Escape(s.BenchmarkName), len(s.Points), len(s.Planned))
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	loadHead := "rate"
	if s.Load == LoadConcurrency {
		loadHead = "conc."
	}
	head := []string{"", loadHead, "sent/s", "done/s", "out tok/s", "TTFT p50", "p99", "TPOT p50", "p99", "E2E p50", "p99",
		s.FrontierLatency, "J/tok", "W avg", "goodput/s", ""}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for i := range s.Points {
		p := &s.Points[i]
		q := func(dist, stat string) *float64 { return Latency{dist, stat}.Of(p.Latency) }
		var jpt, watts *float64
		if p.Energy != nil {
			jpt, watts = p.Energy.JoulesPerOutputToken, p.Energy.AvgPowerW
		}
		mark := ""
		switch {
		case p.Frontier && p.Saturation != "":
			mark = "* saturated"
		case p.Frontier:
			mark = "*"
		case p.Saturation != "":
			mark = "saturated"
		}
		cells := []string{strconv.Itoa(p.Index + 1), strconv.FormatFloat(p.Load, 'g', 6, 64),
			report.Number(p.Rates.Send), report.Number(p.Rates.Completion), report.Number(p.Tokens.OutputPerSecond),
			report.Milliseconds(q("ttft", "p50")), report.Milliseconds(q("ttft", "p99")), report.Milliseconds(q("tpot", "p50")), report.Milliseconds(q("tpot", "p99")),
			report.Milliseconds(q("e2e", "p50")), report.Milliseconds(q("e2e", "p99")), report.Milliseconds(p.LatencyS),
			report.Number(jpt), report.Number(watts), report.Number(p.GoodputRPS), mark}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	buf.WriteString("latencies in ms; * on the energy–latency frontier (no other point has both lower J/token and lower " + s.FrontierLatency + ")\n")
	if s.Idle != nil {
		fmt.Fprintf(&buf, "idle baseline %s W, measured by %s, used by every point\n", report.Number(&s.Idle.PowerW), termtext.Escape(s.Idle.RunID))
	}
	for i := range s.Points {
		if p := &s.Points[i]; p.Saturation != "" {
			fmt.Fprintf(&buf, "point %d (%s) saturated: %s\n", p.Index+1, termtext.Escape(p.RunID), termtext.Escape(p.Saturation))
		}
	}
	stop := s.StopReason
	if s.StopDetail != "" {
		stop += ": " + s.StopDetail
	}
	fmt.Fprintf(&buf, "stopped: %s\n", termtext.Escape(stop))
	if len(s.Frontier) == 0 {
		buf.WriteString("frontier: none (no point has both J/token and " + s.FrontierLatency + ")\n")
	} else {
		fmt.Fprintf(&buf, "frontier: %s\n", termtext.Escape(strings.Join(s.Frontier, ", ")))
	}
	_, err := w.Write(buf.Bytes())
	return err
}
