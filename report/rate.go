package report

import (
	"fmt"
	"sort"
	"strings"
)

// RateTargetShare is the share of its target rate below which a run is
// flagged as not having reached it.
const RateTargetShare = 0.95

// Pacing is what the open-loop pacer saw over a run: the sends it
// released, those of them that waited for an in-flight slot, the cap
// (0: none), and whether the client was saturated.
type Pacing struct {
	Paced, CapWaits int64
	Concurrency     int
	ClientSaturated bool
}

// RateShortfall says why an open-loop run did not reach its target rate:
// "" when it has no target (closed loop) or reached RateTargetShare of it.
// The achieved send rate falls short when the in-flight cap was full (the
// server could not keep up with the cap given) or the client could not
// keep its schedule; the server is slower than the rate when the sends
// kept it but the last requests finished long after the last send.
func RateShortfall(row *Row, p Pacing) string {
	if row.RequestRate == nil || *row.RequestRate <= 0 {
		return ""
	}
	target := *row.RequestRate
	sendShort := row.SendRate != nil && *row.SendRate < RateTargetShare*target
	serverSlow := false
	var tail float64
	if row.CompletionRate != nil && row.SendRate != nil && *row.SendRate > 0 && row.TotalDurationSeconds != nil {
		span := float64(row.TotalPrompts) / *row.SendRate
		tail = *row.TotalDurationSeconds - span
		serverSlow = *row.CompletionRate < RateTargetShare*target && tail > span/2
	}
	if !sendShort && !serverSlow {
		return ""
	}
	var causes []string
	if p.CapWaits > 0 && p.Paced > 0 {
		causes = append(causes, fmt.Sprintf("the in-flight cap of %d was full for %.0f %% of sends: raise --concurrency (or the server is slower than the rate)",
			p.Concurrency, 100*float64(p.CapWaits)/float64(p.Paced)))
	}
	if p.ClientSaturated {
		causes = append(causes, "the client was saturated (client_saturated): it could not send on time")
	}
	if serverSlow {
		causes = append(causes, fmt.Sprintf("the server is slower than the rate: the last requests finished %.1f s after the last send", tail))
	}
	if len(causes) == 0 {
		causes = append(causes, "the client sent behind its schedule")
	}
	return fmt.Sprintf("target %s req/s not reached (sent %s, completed %s req/s): %s",
		fmtRate(&target), fmtRate(row.SendRate), fmtRate(row.CompletionRate), strings.Join(causes, "; "))
}

// StageShortfall says whether an open-loop stage sent too few requests:
// fewer than RateTargetShare of ExpectedRequests, less three times sd, the
// standard deviation of the count its arrival process gives by chance
// (0 for constant arrivals, √expected for poisson). "" when the stage
// kept up, or has no rate (closed loop).
func StageShortfall(s *StageStats, sd float64) string {
	if s.ExpectedRequests == nil || s.Rate == nil {
		return ""
	}
	want := *s.ExpectedRequests
	if float64(s.Requests) >= RateTargetShare*want-3*sd {
		return ""
	}
	return fmt.Sprintf("stage %d (%s): sent %d requests (%s req/s), its rate asks for %.0f", s.Index, s.Spec, s.Requests, fmtRate(s.SendRate), want)
}

func fmtRate(p *float64) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprintf("%.4g", *p)
}

// FormatFailures writes failed requests' counts by outcome as the CSV's
// failures column does: "timeout=3 canceled=2", most frequent first, ""
// for none.
func FormatFailures(byOutcome map[string]int) string {
	keys := make([]string, 0, len(byOutcome))
	for k, n := range byOutcome {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if byOutcome[keys[i]] != byOutcome[keys[j]] {
			return byOutcome[keys[i]] > byOutcome[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, byOutcome[k])
	}
	return strings.Join(parts, " ")
}
