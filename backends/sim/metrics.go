package sim

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Finished reasons, the finished_reason label of vllm:request_success_total.
const (
	finishStop   = "stop"
	finishLength = "length"
	finishAbort  = "abort"
)

// Histogram buckets as vLLM declares them (vllm/v1/metrics/loggers.py).
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
		0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	itlBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
		0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	latencyBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
		30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	// tokenBuckets is vLLM's build_1_2_5_buckets up to a 32k context.
	tokenBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000}
)

// metrics are the vllm:* series a real vLLM server exports, with its
// names and its model_name label, so that dashboards built for vLLM work
// against the simulator.
type metrics struct {
	running, waiting prometheus.Gauge
	promptTokens     prometheus.Counter
	generationTokens prometheus.Counter
	success          *prometheus.CounterVec
	ttft, e2e        prometheus.Histogram
	itl, tpot        prometheus.Histogram
	reqPrompt        prometheus.Histogram
	reqGeneration    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, model string) (*metrics, error) {
	labels := prometheus.Labels{"model_name": model}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: labels})
	}
	m := &metrics{
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:num_requests_running",
			Help: "Number of requests in model execution batches.", ConstLabels: labels}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:num_requests_waiting",
			Help: "Number of requests waiting to be processed.", ConstLabels: labels}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:prompt_tokens_total",
			Help: "Number of prefill tokens processed.", ConstLabels: labels}),
		generationTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:generation_tokens_total",
			Help: "Number of generation tokens processed.", ConstLabels: labels}),
		success: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vllm:request_success_total",
			Help: "Count of successfully processed requests.", ConstLabels: labels}, []string{"finished_reason"}),
		ttft: hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttftBuckets),
		e2e:  hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", latencyBuckets),
		itl:  hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itlBuckets),
		tpot: hist("vllm:time_per_output_token_seconds",
			"Histogram of time per output token in seconds. DEPRECATED: Use vllm:inter_token_latency_seconds instead.", itlBuckets),
		reqPrompt:     hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokenBuckets),
		reqGeneration: hist("vllm:request_generation_tokens", "Number of generation tokens processed.", tokenBuckets),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokenwatt_sim_info",
		Help:        "Always 1: this server is tokenwatt's simulator, not a real inference server.",
		ConstLabels: prometheus.Labels{"model_name": model, "simulated": "true"}})
	info.Set(1)
	for _, c := range []prometheus.Collector{m.running, m.waiting, m.promptTokens, m.generationTokens,
		m.success, m.ttft, m.e2e, m.itl, m.tpot, m.reqPrompt, m.reqGeneration, info} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
	}
	// Zero series for every reason exist from the start, so rate() works
	// before the first request of each kind finishes.
	for _, r := range []string{finishStop, finishLength, finishAbort} {
		m.success.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) setQueue(running, waiting int) {
	m.running.Set(float64(running))
	m.waiting.Set(float64(waiting))
}
