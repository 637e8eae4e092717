package appendfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRepairsACutLine: a file cut mid-line (a killed writer) gets a
// newline before the next append, so the next line is whole; a whole
// file, an empty one and a new one are left as they are.
func TestOpenRepairsACutLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, before string // before: "" with exists false is a new file
		exists       bool
		repaired     bool
		after        string
	}{
		{"cut mid-line", "{\"a\":1}\n{\"a\":", true, true, "{\"a\":1}\n{\"a\":\n{\"b\":2}\n"},
		{"whole", "{\"a\":1}\n", true, false, "{\"a\":1}\n{\"b\":2}\n"},
		{"empty", "", true, false, "{\"b\":2}\n"},
		{"new", "", false, false, "{\"b\":2}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".jsonl")
			if tc.exists {
				if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, repaired, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("{\"b\":2}\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.after || repaired != tc.repaired {
				t.Errorf("file %q, repaired %v; want %q, %v", got, repaired, tc.after, tc.repaired)
			}
		})
	}
}

// TestOpenDevice: a device is opened as it is (nothing to read or repair):
// /dev/null takes the write, /dev/full refuses it with ENOSPC.
func TestOpenDevice(t *testing.T) {
	for _, dev := range []string{"/dev/null", "/dev/full"} {
		f, repaired, err := Open(dev)
		if err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		_, werr := f.WriteString("x\n")
		f.Close()
		if repaired || (dev == "/dev/null") != (werr == nil) {
			t.Errorf("%s: repaired %v, write error %v", dev, repaired, werr)
		}
	}
}
