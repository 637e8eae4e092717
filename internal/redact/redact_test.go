package redact

import "testing"

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:s3cret@host:9400/metrics": "http://user:xxxxx@host:9400/metrics",
		"http://token@host/metrics":            "http://xxxxx@host/metrics",
		"http://host/metrics":                  "http://host/metrics",
		"user:s3cret@victoria":                 "xxxxx@victoria",
		"http://user:s3cret@[::1/x":            "http://xxxxx@[::1/x",
		"ftp://user:s3cret@victoria:8428/x":    "ftp://user:xxxxx@victoria:8428/x",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}
