package command

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type failCmd struct {
	Code int `default:"0"`
}

func (c *failCmd) Run() error {
	err := errors.New("first line\nsecond   line")
	if c.Code == 0 {
		return err
	}
	return Exit(c.Code, err)
}

type grammar struct {
	Fail failCmd `cmd:""`
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // a substring of stdout+stderr
	}{
		{[]string{"fail"}, ExitFailed, "prog: first line second line\n"},
		{[]string{"fail", "--code", "7"}, 7, "prog: first line second line\n"},
		{[]string{"--bogus"}, ExitUsage, "prog: unknown flag --bogus (see prog --help)"},
		{[]string{"--help"}, ExitOK, "Usage: prog"},
	} {
		var out, errb bytes.Buffer
		code := Run("prog", &grammar{}, tc.args, &out, &errb, nil)
		all := out.String() + errb.String()
		if code != tc.code || !strings.Contains(all, tc.out) {
			t.Errorf("Run(%v) = %d, output %q; want %d containing %q", tc.args, code, all, tc.code, tc.out)
		}
		if strings.Count(errb.String(), "\n") > 1 {
			t.Errorf("Run(%v): more than one line on stderr: %q", tc.args, errb.String())
		}
	}
}

func TestUsagef(t *testing.T) {
	var ce *Error
	if err := Usagef("bad %s", "x"); !errors.As(err, &ce) || ce.Code != ExitUsage || err.Error() != "bad x" {
		t.Fatalf("Usagef: %v", err)
	}
	if err := fmt.Errorf("wrapped: %w", Usage(errors.New("y"))); !errors.As(err, &ce) || ce.Code != ExitUsage {
		t.Fatalf("a wrapped usage error lost its code: %v", err)
	}
}
