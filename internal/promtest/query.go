package promtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

const (
	// queryTimeout bounds one HTTP query.
	queryTimeout = 10 * time.Second
	// pollInterval is WaitFor's pause between queries; a scrape or an
	// ingestion flush takes about a second, so finer polling buys nothing.
	pollInterval = 100 * time.Millisecond
)

// Query runs the instant query promql at the current time against the
// Prometheus HTTP API at baseURL (Prometheus or VictoriaMetrics) and
// returns its value: a scalar, or the only sample of an instant vector.
// found is false for an empty vector. An error, a vector of several
// samples, a native histogram sample (wrap it in histogram_count,
// histogram_sum or histogram_quantile) or any other result type fails the
// test.
func Query(t testing.TB, baseURL, promql string) (float64, bool) {
	t.Helper()
	v, found, err := query(baseURL, promql, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return v, found
}

// QueryAt is Query evaluated at ts instead of now: the value as it stood
// then, e.g. just before a scraped target went away and Prometheus marked
// its series stale.
func QueryAt(t testing.TB, baseURL, promql string, ts time.Time) (float64, bool) {
	t.Helper()
	v, found, err := query(baseURL, promql, ts)
	if err != nil {
		t.Fatal(err)
	}
	return v, found
}

// WaitFor runs the instant query promql every 100 ms until it returns a
// value for which cond holds, and returns that value. It fails the test
// with the last value or error when timeout passes, and at once when the
// query itself is malformed (bad_data) or its result is not a single
// value.
func WaitFor(t testing.TB, baseURL, promql string, timeout time.Duration, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		v, found, err := query(baseURL, promql, time.Now())
		var apiErr *v1.Error
		switch {
		case errors.As(err, &apiErr) && apiErr.Type == v1.ErrBadData:
			t.Fatal(err)
		case errors.Is(err, errNotSingle):
			t.Fatal(err)
		case err != nil:
			last = err.Error()
		case !found:
			last = "empty result"
		case cond(v):
			return v
		default:
			last = fmt.Sprintf("value %v", v)
		}
		if time.Now().After(deadline) {
			t.Fatalf("WaitFor %s at %s: condition not met within %v; last: %s", promql, baseURL, timeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// Equal is a WaitFor condition: the value is exactly want.
func Equal(want float64) func(float64) bool {
	return func(v float64) bool { return v == want }
}

// errNotSingle marks results that are not one value: the query is wrong,
// and polling will not fix it.
var errNotSingle = errors.New("query result is not a single value")

// instant runs the instant query promql at ts on baseURL's HTTP API,
// within queryTimeout.
func instant(baseURL, promql string, ts time.Time) (model.Value, v1.Warnings, error) {
	client, err := api.NewClient(api.Config{Address: baseURL})
	if err != nil {
		return nil, nil, fmt.Errorf("query %s: %w", baseURL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	res, warnings, _, err := v1.NewAPI(client).Query(ctx, promql, ts)
	if err != nil {
		return nil, nil, fmt.Errorf("query %s at %s: %w", promql, baseURL, err)
	}
	return res, warnings, nil
}

func query(baseURL, promql string, ts time.Time) (float64, bool, error) {
	res, _, err := instant(baseURL, promql, ts)
	if err != nil {
		return 0, false, err
	}
	switch r := res.(type) {
	case *model.Scalar:
		return float64(r.Value), !math.IsNaN(float64(r.Value)), nil
	case model.Vector:
		switch {
		case len(r) == 0:
			return 0, false, nil
		case len(r) > 1:
			return 0, false, fmt.Errorf("query %s at %s: %w: %d samples: %v", promql, baseURL, errNotSingle, len(r), r)
		case r[0].Histogram != nil:
			return 0, false, fmt.Errorf("query %s at %s: %w: a native histogram %v (use histogram_count, histogram_sum or histogram_quantile)", promql, baseURL, errNotSingle, r[0].Histogram)
		}
		return float64(r[0].Value), true, nil
	default:
		return 0, false, fmt.Errorf("query %s at %s: %w: result type %s", promql, baseURL, errNotSingle, res.Type())
	}
}

// VectorAt runs the instant query promql at ts and returns its samples
// (float or native histogram) as an instant vector; a scalar result is a
// vector of one sample without labels. Errors fail the test.
func VectorAt(t testing.TB, baseURL, promql string, ts time.Time) model.Vector {
	t.Helper()
	res, warnings, err := instant(baseURL, promql, ts)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Logf("query %s: warnings %v", promql, warnings)
	}
	switch r := res.(type) {
	case model.Vector:
		return r
	case *model.Scalar:
		return model.Vector{{Metric: model.Metric{}, Value: r.Value, Timestamp: r.Timestamp}}
	default:
		t.Fatalf("query %s at %s: result type %s, want a vector", promql, baseURL, res.Type())
		return nil
	}
}

// MatrixAt runs promql, a range selector (m[5m]), as an instant query at
// ts and returns the raw samples it selects: with VictoriaMetrics these
// include staleness markers, as NaN samples; Prometheus never returns
// them. Errors and any other result type fail the test.
func MatrixAt(t testing.TB, baseURL, promql string, ts time.Time) model.Matrix {
	t.Helper()
	res, _, err := instant(baseURL, promql, ts)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := res.(model.Matrix)
	if !ok {
		t.Fatalf("query %s at %s: result type %s, want a matrix", promql, baseURL, res.Type())
	}
	return m
}
