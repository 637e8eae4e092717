//go:build linux && cgo

package energy

import (
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/dl"
)

// loadLibrary checks that the dynamic linker can load name, so that a
// missing GPU library is reported with dlerror's reason before the
// bindings (which dlopen it again) are touched.
func loadLibrary(name string) error {
	lib := dl.New(name, dl.RTLD_LAZY|dl.RTLD_GLOBAL)
	if err := lib.Open(); err != nil {
		return err
	}
	return lib.Close()
}

// libraryMissing reports whether err says that name itself (not a
// library it needs) is not installed.
func libraryMissing(name string, err error) bool {
	msg := err.Error()
	return strings.Contains(msg, name+" not found") ||
		(strings.HasPrefix(msg, name+":") && strings.Contains(msg, "No such file"))
}
