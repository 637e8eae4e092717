//go:build !(linux && cgo)

package energy

import "fmt"

// Without cgo on Linux there are no DCGM or NVML bindings: the sources
// say so, and auto settles for none.

func openDCGMLib(string) (dcgmLib, error) {
	return nil, fmt.Errorf("dcgm: this build cannot load %s (it was built without cgo, or not for Linux): rebuild with CGO_ENABLED=1, or use scrape:URL of an energy-exporter", dcgmLibName)
}

func openNVMLLib() (nvmlLib, error) {
	return nil, fmt.Errorf("nvml: this build cannot load %s (it was built without cgo, or not for Linux): rebuild with CGO_ENABLED=1, or use scrape:URL of an energy-exporter", nvmlLibName)
}
