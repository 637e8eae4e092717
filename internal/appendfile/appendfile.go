// Package appendfile opens line-oriented files (JSON lines) for
// appending so that a new line never continues an old one: a file whose
// last line was cut short (a process killed mid-write, a full disk) gets
// a newline before anything is appended. It depends on nothing of the
// module.
package appendfile

import (
	"errors"
	"io/fs"
	"os"
)

// Open opens path for appending, creating it (mode 0644, not its
// directory) if needed. When path is a regular file that does not end in
// a newline, Open writes one first and reports repaired: the cut line
// stays as it was (readers skip a line that does not parse) and the next
// write starts a line of its own. Devices, pipes and files that cannot
// be read are opened write-only, as they are.
func Open(path string) (f *os.File, repaired bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		// Write-only: there is no last byte to read, and nothing to repair
		// that this process could see.
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		return f, false, err
	}
	if err != nil {
		return nil, false, err
	}
	repaired, err = repair(f)
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, repaired, nil
}

// repair appends a newline to f if it is a regular file whose last byte
// is not one.
func repair(f *os.File) (bool, error) {
	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !info.Mode().IsRegular() || info.Size() == 0 {
		return false, nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err != nil {
		return false, err
	}
	if last[0] == '\n' {
		return false, nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return false, err
	}
	return true, nil
}
