package energy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// SourceOptions are the settings OpenSource passes to the source it opens.
type SourceOptions struct {
	// DCGMAddr is a running nv-hostengine's HOST:PORT; empty runs DCGM
	// embedded in this process.
	DCGMAddr string
	// Interval is the sampling interval: DCGM refreshes its watched
	// fields this often, the scrape source quotes it in warnings.
	// Zero means one second.
	Interval time.Duration
	// HTTPClient fetches scrape:URL; nil means a client with a timeout.
	HTTPClient *http.Client
	// SimMetricsURL is the built-in simulator's /metrics URL when the run
	// targets it: then sim and auto read its simulated GPU through the
	// scrape source, as a remote GPU host would be read.
	SimMetricsURL string
	// Logger receives notices (a GPU skipped, what a scrape endpoint
	// serves); nil drops them.
	Logger *slog.Logger
	// GPUs chooses the GPUs measured (--gpus): auto (or empty), all, or
	// a comma list of indices and UUIDs; see ParseGPUs and GPUsAuto.
	GPUs string
	// Selector is PromQL label matchers without braces (e.g.
	// pod="vllm-0",namespace="llm") that a scrape source's GPU series
	// must match; local sources reject it.
	Selector string
	// Hostname labels this host's GPUs; empty means NODE_NAME (the
	// Kubernetes downward-API convention), then the OS hostname.
	Hostname string
	// CUDAVisibleDevices overrides the environment's
	// CUDA_VISIBLE_DEVICES for auto selection (tests); nil reads the
	// environment.
	CUDAVisibleDevices *string
}

// hostname is the hostname label of this host's GPUs.
func (o SourceOptions) hostname() string { return ResolveHostname(o.Hostname) }

// ResolveHostname is the hostname label: flag when set, else NODE_NAME
// (set from the downward API in Kubernetes pods), else the OS hostname.
func ResolveHostname(flag string) string {
	if flag != "" {
		return flag
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	return localHostname()
}

// cudaVisible is CUDA_VISIBLE_DEVICES for auto selection.
func (o SourceOptions) cudaVisible() string {
	if o.CUDAVisibleDevices != nil {
		return *o.CUDAVisibleDevices
	}
	return cudaVisibleDevices()
}

func (o SourceOptions) logf(format string, args ...any) {
	if o.Logger != nil {
		o.Logger.Info(fmt.Sprintf(format, args...))
	}
}

func (o SourceOptions) interval() time.Duration {
	if o.Interval <= 0 {
		return time.Second
	}
	return o.Interval
}

// Library names, for the one-line errors that say what to install.
const (
	dcgmLibName = "libdcgm.so.4"
	nvmlLibName = "libnvidia-ml.so.1"
)

// libraryOpeners open the GPU libraries behind the wrappers the dcgm and
// nvml sources use; tests replace them with fakes.
type libraryOpeners struct {
	dcgm func(addr string) (dcgmLib, error)
	nvml func() (nvmlLib, error)
}

var realOpeners = libraryOpeners{dcgm: openDCGMLib, nvml: openNVMLLib}

// OpenSource opens the energy source that spec names: auto, dcgm, nvml,
// none or scrape:URL. For none it returns a nil Source and a nil error:
// a run without energy is valid, and a nil Source cannot be mistaken
// for GPUs that drew no power. For auto it tries dcgm, then nvml, then
// settles for none (nil Source, nil error); the string is then a
// one-line account of what it chose and why the others were not, e.g.
// "energy: auto chose none: dcgm: libdcgm.so.4 not found ...; nvml: ...".
// For the other specs the string is empty.
//
// Every error is one line that names what failed and the fix. A dcgm or
// nvml library that is missing or fails to initialise is never called
// again: after a failed Init the libraries kill the process.
func OpenSource(ctx context.Context, spec string, opts SourceOptions) (Source, string, error) {
	return openSource(ctx, spec, opts, realOpeners)
}

func openSource(ctx context.Context, spec string, opts SourceOptions, open libraryOpeners) (Source, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if opts.SimMetricsURL != "" && (spec == SourceSim || spec == SourceAuto) {
		spec = SourceScrape + ":" + opts.SimMetricsURL
		if g, err := ParseGPUs(opts.GPUs); err == nil && g.Auto {
			// Every simulated GPU serves the simulated model.
			opts.GPUs = GPUsAll
		}
	}
	switch {
	case spec == SourceNone:
		return nil, "", nil
	case spec == SourceDCGM:
		src, err := openDCGMSource(open.dcgm, opts)
		return src, "", err
	case spec == SourceNVML:
		src, err := openNVMLSource(open.nvml, opts)
		return src, "", err
	case spec == SourceAuto:
		return openAuto(ctx, opts, open)
	case spec == SourceSim:
		return nil, "", errors.New("energy source sim: the simulator's GPU is read from its /metrics: use scrape:http://HOST:PORT/metrics")
	case strings.HasPrefix(spec, SourceScrape+":"):
		src, err := openScrape(ctx, strings.TrimPrefix(spec, SourceScrape+":"), scrapeOptions{
			HTTPClient: opts.HTTPClient, Interval: opts.interval(), Logger: opts.Logger, GPUs: opts.GPUs, Selector: opts.Selector,
		})
		return src, "", err
	}
	return nil, "", fmt.Errorf("energy source %q: unknown (use auto, dcgm, nvml, scrape:URL or none)", spec)
}

// openAuto tries dcgm, then nvml, and falls back to none.
func openAuto(ctx context.Context, opts SourceOptions, open libraryOpeners) (Source, string, error) {
	var why []string
	for _, try := range []struct {
		name string
		open func() (Source, error)
	}{
		{SourceDCGM, func() (Source, error) { return openDCGMSource(open.dcgm, opts) }},
		{SourceNVML, func() (Source, error) { return openNVMLSource(open.nvml, opts) }},
	} {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		src, err := try.open()
		var choice *ChoiceError
		if errors.As(err, &choice) {
			// The GPUs asked for are not there, or the choice is
			// malformed: the next source sees the same GPUs, and no
			// energy at all would hide the mistake.
			return nil, "", err
		}
		if err != nil {
			// The sources' errors start with their name already.
			why = append(why, err.Error())
			continue
		}
		msg := fmt.Sprintf("energy: auto chose %s: %s", try.name, describeSource(src))
		if len(why) > 0 {
			msg += "; not " + strings.Join(why, "; ")
		}
		return src, msg, nil
	}
	return nil, "energy: auto chose none: " + strings.Join(why, "; "), nil
}

// describeSource is a source's GPUs and method, for log lines.
func describeSource(src Source) string {
	devs := src.Devices()
	models := make([]string, 0, 1)
	for _, d := range devs {
		if !slices.Contains(models, d.Model) {
			models = append(models, d.Model)
		}
	}
	return fmt.Sprintf("%d GPU(s) (%s), method %s", len(devs), strings.Join(models, ", "), src.Method())
}

// oneLine flattens a library's message (some span lines) for a one-line
// error.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// localHostname is this host's name, for the hostname label.
func localHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// addrHost is the host part of HOST[:PORT] (a remote nv-hostengine's GPUs
// are in that host); a loopback address is this host.
func addrHost(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	switch host {
	case "", "localhost", "127.0.0.1", "::1":
		return ResolveHostname("")
	}
	return host
}
