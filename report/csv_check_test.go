package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckCSV: what AppendCSV would refuse at the end of a run, CheckCSV
// refuses before it (another header, the Python POC's 13 columns, a
// directory that cannot be made, a directory for a file), and it
// accepts what AppendCSV takes (a new file, an empty one, ours) without
// writing anything.
func TestCheckCSV(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ours := write("ours.csv", strings.Join(Columns(), ",")+"\n")
	empty := write("empty.csv", "")
	poc := write("poc.csv", strings.Join(Columns()[:13], ",")+"\nbench,vllm,m,1,1,0,1,1,2,1,1,2,2025-06-01T12:30:45.123456+00:00\n")
	foreign := write("foreign.csv", "config_name,summary_total_prompts,timestamp\nx,1,t\n")
	notADir := write("file", "x")

	for _, tc := range []struct {
		name, path string
		want       string // "" accepts; else a substring of the error
		header     bool   // and the error wraps ErrHeaderMismatch
	}{
		{"ours", ours, "", false},
		{"empty", empty, "", false},
		{"new, in a new directory", filepath.Join(dir, "new", "summary.csv"), "", false},
		{"the Python POC's 13 columns", poc, "the Python POC's 13 columns", true},
		{"a foreign CSV", foreign, `column 1 is "config_name"`, true},
		{"under a file", filepath.Join(notADir, "summary.csv"), "not a directory", false},
		{"a directory", dir, "is a directory", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if info, err := os.Stat(tc.path); err == nil && info.Mode().IsRegular() {
				before, _ = os.ReadFile(tc.path)
			}
			err := CheckCSV(tc.path)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckCSV(%s): %v", tc.path, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path)):
				t.Fatalf("CheckCSV(%s) = %v, want an error naming the file and %q", tc.path, err, tc.want)
			case tc.header != errors.Is(err, ErrHeaderMismatch):
				t.Fatalf("CheckCSV(%s) = %v: wraps ErrHeaderMismatch %v, want %v", tc.path, err, !tc.header, tc.header)
			}
			after, statErr := os.ReadFile(tc.path)
			if before == nil && statErr == nil && tc.want == "" {
				t.Errorf("CheckCSV left a file behind at %s", tc.path)
			}
			if before != nil && string(after) != string(before) {
				t.Errorf("CheckCSV changed %s", tc.path)
			}
		})
	}
	// What CheckCSV accepted, AppendCSV appends to.
	if err := AppendCSV(filepath.Join(dir, "new", "summary.csv"), fullRow()); err != nil {
		t.Fatal(err)
	}
}
