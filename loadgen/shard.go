package loadgen

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// Shard is one of Count load generators that run one scenario together,
// under one run id (docs/definitions.md, "Sharded runs"). Shard Index
// (0-based) sends requests k of the unsharded run with k mod Count =
// Index: open-loop arrival k of the schedule the scenario's seed gives
// (of each stage's, in a run with stages), each with the prompt the
// unsharded run gives request k, so that the shards' requests together
// are the unsharded run's. The zero value, and any Count of 1 or less, is
// an unsharded run.
type Shard struct {
	Index, Count int
}

// MaxShards bounds a shard count: far more load generators than any
// server needs, and few enough that a shard skipping the others'
// arrivals costs nothing.
const MaxShards = 10_000

// ParseShard reads a shard as --shard writes it, INDEX/COUNT with INDEX
// from 0 to COUNT-1, e.g. 0/4. An empty INDEX (/4) takes defaultIndex,
// the caller's (JOB_COMPLETION_INDEX, in a Kubernetes Indexed Job);
// defaultIndex "" leaves it missing, which is an error.
func ParseShard(spec, defaultIndex string) (Shard, error) {
	idx, count, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return Shard{}, fmt.Errorf("%q: want INDEX/COUNT, e.g. 0/4 (or /4 with JOB_COMPLETION_INDEX set)", spec)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 1 || n > MaxShards {
		return Shard{}, fmt.Errorf("%q: the shard count must be a whole number from 1 to %d", spec, MaxShards)
	}
	from := ""
	if idx = strings.TrimSpace(idx); idx == "" {
		if idx = strings.TrimSpace(defaultIndex); idx == "" {
			return Shard{}, fmt.Errorf("%q: no shard index (give INDEX/%d, or run as a Kubernetes Indexed Job, which sets JOB_COMPLETION_INDEX)", spec, n)
		}
		from = " (JOB_COMPLETION_INDEX)"
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("%q: shard index %q%s must be a whole number from 0 to %d", spec, idx, from, n-1)
	}
	return Shard{Index: i, Count: n}, nil
}

// Sharded reports whether the run is one of several shards.
func (s Shard) Sharded() bool { return s.Count > 1 }

// String is the shard as --shard writes it ("1/4"); "" when not sharded.
func (s Shard) String() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// count is the shard's share of n requests (or in-flight slots): those
// k < n with k mod Count = Index, n/Count and one more for the first
// n mod Count shards.
func (s Shard) count(n int) int {
	if !s.Sharded() {
		return n
	}
	c := n / s.Count
	if s.Index < n%s.Count {
		c++
	}
	return c
}

// global is the unsharded run's number of the shard's j-th request
// (0-based): Index + j·Count.
func (s Shard) global(j int64) int64 {
	if !s.Sharded() {
		return j
	}
	return int64(s.Index) + j*int64(s.Count)
}

// Select returns the shard's part of sched: arrivals Index, Index+Count,
// Index+2·Count, ... of it. sched itself is the unsharded run's, from the
// same seed, so that the shards' arrivals together are exactly its.
func (s Shard) Select(sched Schedule) Schedule {
	if !s.Sharded() {
		return sched
	}
	return &shardSchedule{inner: sched, skip: s.Index, every: s.Count}
}

// shardSchedule is every `every`-th arrival of inner, after the first
// `skip`.
type shardSchedule struct {
	inner       Schedule
	skip, every int
	started     bool
}

func (s *shardSchedule) Next() time.Duration {
	n := s.every - 1
	if !s.started {
		n, s.started = s.skip, true
	}
	for range n {
		s.inner.Next()
	}
	return s.inner.Next()
}

// Share is the shard's share of sc, what this load generator runs: the
// rates (and a ramp's) divided by Count, and num_samples, warm-up
// requests and each concurrency (closed-loop, or an in-flight cap) split
// as evenly as whole requests allow, n/Count plus one for the first
// n mod Count shards. The schedule itself is still drawn from sc
// (Select). It is sc itself when not sharded; an error when a shard would
// get no request or no in-flight slot to send with.
func (s Shard) Share(sc *scenario.Scenario) (*scenario.Scenario, error) {
	if !s.Sharded() {
		return sc, nil
	}
	out := *sc
	n := float64(s.Count)
	split := func(what string, v int, zeroOK bool) (int, error) {
		if v <= 0 {
			return v, nil
		}
		if v < s.Count && !zeroOK {
			return 0, fmt.Errorf("%s %d is less than the %d shards: every shard needs at least one", what, v, s.Count)
		}
		return s.count(v), nil
	}
	var err error
	if out.NumSamples, err = split("num_samples", sc.NumSamples, false); err != nil {
		return nil, err
	}
	if out.Warmup, err = split("warmup", sc.Warmup, true); err != nil {
		return nil, err
	}
	switch {
	case sc.Rate > 0 || sc.Staged():
		// An open loop's in-flight cap (0: none); stages have their own.
		if out.Concurrency, err = split("the in-flight cap (concurrency)", sc.Concurrency, false); err != nil {
			return nil, err
		}
	default:
		// A closed loop keeps at least one request in flight.
		if out.Concurrency, err = split("concurrency", max(1, sc.Concurrency), false); err != nil {
			return nil, err
		}
	}
	out.Rate = sc.Rate / n
	if sc.Ramp != nil {
		out.Ramp = &scenario.Ramp{From: sc.Ramp.From / n, To: sc.Ramp.To / n, Duration: sc.Ramp.Duration}
	}
	if len(sc.Stages) > 0 {
		out.Stages = make([]scenario.Stage, len(sc.Stages))
		for i, st := range sc.Stages {
			st.Rate /= n
			what := fmt.Sprintf("stage %d's concurrency", i+1)
			if st.Rate > 0 {
				what = fmt.Sprintf("stage %d's in-flight cap", i+1)
			}
			if st.Concurrency, err = split(what, st.Concurrency, false); err != nil {
				return nil, err
			}
			out.Stages[i] = st
		}
	}
	return &out, nil
}
