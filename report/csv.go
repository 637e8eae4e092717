package report

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrHeaderMismatch is wrapped by AppendCSV and ReadCSV when a file's
// header is not exactly Columns: appending to it would put values under
// the wrong names.
var ErrHeaderMismatch = errors.New("CSV header does not match the summary schema")

// FallbackSummaryName is the summary file a run writes its row to, in
// its own directory, when the summary it appends to cannot take it (a
// full disk): a fresh file, header and one row.
const FallbackSummaryName = "summary.csv"

// CheckCSV reports whether AppendCSV could append to path, without
// appending anything: its directory can be created and written, and an
// existing file can be opened for appending and starts with exactly the
// Columns header (or is empty). Missing parent directories are created;
// a file that did not exist is created and removed again. A run calls it
// before its first request, so that a summary it cannot write fails the
// run before anything is measured.
func CheckCSV(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing to check but that the file can be created there.
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("append to %s: %w", path, err)
		}
		f.Close()
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("append to %s: %w", path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	defer f.Close()
	if _, _, err := inspect(f); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

// AppendCSV appends rows to the CSV summary at path. A missing or empty
// file gets the header first, and missing parent directories are created.
// An existing file must start with exactly the Columns header; otherwise
// nothing is written and the error (wrapping ErrHeaderMismatch) names the
// file and the first differing column. The data is fsynced before
// AppendCSV returns, so a finished run's row survives a crash.
//
// AppendCSV does not lock the file: concurrent runs should write to
// separate files.
func AppendCSV(path string, rows ...*Row) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	// O_APPEND puts every write at the end while reads still start at
	// offset 0, where the header is.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("append to %s: %w", path, cerr)
		}
	}()

	var buf bytes.Buffer
	hasHeader, endsInNewline, err := inspect(f)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if !endsInNewline {
		// A file saved by an editor without a final newline would
		// otherwise have our first row glued to its last one.
		buf.WriteByte('\n')
	}
	w := csv.NewWriter(&buf)
	if !hasHeader {
		if err := w.Write(Columns()); err != nil {
			return fmt.Errorf("append to %s: %w", path, err)
		}
	}
	for _, r := range rows {
		if err := w.Write(r.Record()); err != nil {
			return fmt.Errorf("append to %s: %w", path, err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	// One write, so a failure cannot leave half a row behind a good one.
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	// Only a regular file has data to sync: /dev/null, a pipe or a
	// terminal answers EINVAL.
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("append to %s: sync: %w", path, err)
		}
	}
	return nil
}

// inspect reports whether f already holds a header (checking that it is
// ours) and whether its last byte is a newline. An empty file, or one of
// blank lines only, has no header.
func inspect(f *os.File) (hasHeader, endsInNewline bool, err error) {
	info, err := f.Stat()
	if err != nil {
		return false, false, err
	}
	if info.Size() == 0 {
		return false, true, nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err != nil {
		return false, false, err
	}
	endsInNewline = last[0] == '\n'

	header, err := csv.NewReader(io.NewSectionReader(f, 0, info.Size())).Read()
	if errors.Is(err, io.EOF) {
		return false, endsInNewline, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("read header: %w", err)
	}
	if err := checkHeader(header); err != nil {
		return false, false, fmt.Errorf("%w; write elsewhere (--out) or move %s aside", err, f.Name())
	}
	return true, endsInNewline, nil
}

// pocColumns is how many of the first Columns are the Python POC's
// (ai_energy_benchmarks' CSV reporter's).
const pocColumns = 13

// checkHeader compares a file's header with Columns and describes the
// first difference.
func checkHeader(header []string) error {
	want := Columns()
	if len(header) > 0 {
		// Spreadsheets that save "CSV UTF-8" prefix a byte-order mark.
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	if slices.Equal(header, want) {
		return nil
	}
	for i := range min(len(header), len(want)) {
		if header[i] != want[i] {
			return fmt.Errorf("%w (version %d): column %d is %q, want %q",
				ErrHeaderMismatch, SchemaVersion, i+1, header[i], want[i])
		}
	}
	if len(header) == pocColumns {
		return fmt.Errorf("%w (version %d): it has the Python POC's %d columns only, and tokenwatt's summary has %d (the POC's first); its rows would not line up",
			ErrHeaderMismatch, SchemaVersion, pocColumns, len(want))
	}
	if len(header) < len(want) {
		return fmt.Errorf("%w (version %d): header ends after column %d, want %q next",
			ErrHeaderMismatch, SchemaVersion, len(header), want[len(header)])
	}
	return fmt.Errorf("%w (version %d): column %d %q is not in the schema",
		ErrHeaderMismatch, SchemaVersion, len(want)+1, header[len(want)])
}

// ReadCSV reads every row of the CSV summary at path. The header must be
// exactly Columns; a cell that does not parse is an error naming its line
// and column.
func ReadCSV(path string) ([]*Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()

	cr := csv.NewReader(f)
	// Any width for the header, so a mismatch is reported by name rather
	// than as a field count.
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: empty file, no CSV header", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := checkHeader(header); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	cr.FieldsPerRecord = len(schema)

	var rows []*Row
	for {
		cells, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		r := &Row{}
		for i, c := range schema {
			if err := c.parse(r, cells[i]); err != nil {
				line, _ := cr.FieldPos(i)
				return nil, fmt.Errorf("read %s: line %d, column %q: %w", path, line, c.name, err)
			}
		}
		rows = append(rows, r)
	}
}
