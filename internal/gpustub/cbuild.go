// Package gpustub builds the tests' stand-in GPU libraries (dcgmstub,
// nvmlstub) from their C sources: with the C compiler cgo uses, against
// the headers the Go bindings ship, once per content.
package gpustub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleDir is module's directory in the module cache, as the module the
// test runs in requires it (go test puts its own go command first in
// PATH).
func ModuleDir(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Library compiles the C source into the shared library lib (e.g.
// libdcgm.so.4) with args (flags, -I dirs, libraries) and returns the
// directory that holds it, and nothing else, for LD_LIBRARY_PATH. The
// directory is under the user's cache directory, named for name and a
// hash of the compiler, source and args, so a later test process finds
// it built. It is built beside its final name and renamed, so that test
// processes building at once never load half a library.
func Library(name, lib string, source []byte, args ...string) (string, error) {
	cc := cCompiler()
	sum := sha256.New()
	for _, s := range append([]string{cc, string(source)}, args...) {
		sum.Write([]byte(s))
		sum.Write([]byte{0})
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	root := filepath.Join(base, "tokenwatt", "gpustub")
	dir := filepath.Join(root, name+"-"+hex.EncodeToString(sum.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, name+".c")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return "", err
	}
	cmdArgs := append([]string{"-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", filepath.Join(tmp, lib), src}, args...)
	if out, err := exec.Command(cc, cmdArgs...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", cc, strings.Join(cmdArgs, " "), err, out)
	}
	// Another test process may have built the same library meanwhile:
	// either copy is good.
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, lib)); statErr != nil {
			return "", err
		}
	}
	return dir, nil
}

// cCompiler is the C compiler cgo uses.
func cCompiler() string {
	if out, err := exec.Command("go", "env", "CC").Output(); err == nil {
		if cc := strings.Fields(string(out)); len(cc) > 0 {
			return cc[0]
		}
	}
	return "gcc"
}
