package exporter

import (
	"strings"
	"testing"
)

// A --push-url that is not usable is quoted in the error without its
// password (issue 16, defect 4).
func TestStartPushRedactsABadURL(t *testing.T) {
	for _, bad := range []string{"ftp://user:s3cret@victoria:8428/x", "http://user:s3cret@[::1/x", "user:s3cret@victoria"} {
		_, err := StartPush(bad, 1, nil, nil)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
