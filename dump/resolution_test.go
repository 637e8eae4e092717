package dump

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestBucketsNameWhereAPercentileLies(t *testing.T) {
	le := func(v string) *model.Sample { return &model.Sample{Metric: model.Metric{"le": model.LabelValue(v)}} }
	vm := func(v string) *model.Sample {
		return &model.Sample{Metric: model.Metric{"vmrange": model.LabelValue(v)}}
	}
	classic := bucketsOf(model.Vector{le("+Inf"), le("0.01"), le("0.025"), le("0.05")})
	vmr := bucketsOf(model.Vector{vm("1.000e-03...1.136e-03"), vm("1.136e-03...1.292e-03"), vm("not a range")})
	for _, c := range []struct {
		bs   bucketList
		x    float64
		want string
	}{
		{classic, 0.0084, "in (0, 0.01] s"},
		{classic, 0, "in (0, 0.01] s"},
		{classic, 0.01, "in (0, 0.01] s"},
		{classic, 0.02, "in (0.01, 0.025] s"},
		{classic, 0.05, "at or above 0.05 s (the top bucket is +Inf)"},
		{classic, 7, "above 0.05 s (the +Inf bucket)"},
		{vmr, 0.00105, "in (0.001, 0.001136] s"},
		{vmr, 0.0012, "in (0.001136, 0.001292] s"},
		{vmr, 0.5, "in no bucket the server returned"},
	} {
		if got := c.bs.containing(c.x); got != c.want {
			t.Errorf("%v: %q, want %q", c.x, got, c.want)
		}
	}
}

func TestCoverEndKeepsTheScrapeThatCoversTheEnd(t *testing.T) {
	at := func(ms int64, v float64) model.SamplePair {
		return model.SamplePair{Timestamp: model.Time(ms), Value: model.SampleValue(v)}
	}
	s := []model.SamplePair{at(1000, 0), at(2000, 5), at(3000, 9), at(4000, 12)}
	end := time.UnixMilli(2500)
	got := coverEnd(s, end)
	if len(got) != 3 || got[2].Value != 9 {
		t.Errorf("coverEnd to 2.5 s: %v; want up to the 3 s sample", got)
	}
	if inc, _, _, _ := counterIncrease(got, time.UnixMilli(1000), time.UnixMilli(10000)); inc != 9 {
		t.Errorf("increase %v, want 9 (the requests finished by 2.5 s count at the 3 s scrape)", inc)
	}
	if got := coverEnd(s, time.UnixMilli(2000)); len(got) != 2 {
		t.Errorf("coverEnd at a sample's instant: %v", got)
	}
	if got := coverEnd(s, time.UnixMilli(9000)); len(got) != 4 {
		t.Errorf("coverEnd past the last sample: %v", got)
	}
}
