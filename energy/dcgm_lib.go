//go:build linux && cgo

package energy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-dcgm/pkg/dcgm"
)

// dcgmWatchSeq makes DCGM group names unique: a remote nv-hostengine is
// shared with other clients, and a process may open the source twice.
var dcgmWatchSeq atomic.Int64

// dcgmLibrary is dcgmLib on go-dcgm. It exists only after dcgm.Init
// succeeded, and calls DCGM only while that Init holds: that is what
// keeps every call safe (after a failed Init, or after Shutdown, go-dcgm
// would call into a library it never loaded, or a stale connection). It
// calls only functions that every DCGM 4.x exports: not GetDeviceInfo,
// whose dcgmGetGpuStatus is new in 4.5.
type dcgmLibrary struct {
	addr       string // the nv-hostengine's HOST:PORT; empty for embedded DCGM
	group      dcgm.GroupHandle
	fieldGroup dcgm.FieldHandle
	watching   bool
	// down is why DCGM may not be called now: nil while an Init holds;
	// errDCGMClosed after Close; a failed reconnection's error.
	down error
}

// openDCGMLib loads libdcgm.so.4 and initialises DCGM: embedded when addr
// is empty, else connected to the nv-hostengine at addr.
func openDCGMLib(addr string) (dcgmLib, error) {
	// go-dcgm says only "not found" when dlopen fails; dlerror says why
	// (the library, or one it needs, is missing or of the wrong kind).
	if err := loadLibrary(dcgmLibName); err != nil {
		return nil, dcgmLoadError(err)
	}
	if err := initDCGM(addr); err != nil {
		return nil, err
	}
	return &dcgmLibrary{addr: addr}, nil
}

// initDCGM is dcgm.Init, embedded or connected to addr, with a one-line
// error that says what to check.
func initDCGM(addr string) error {
	var err error
	if addr == "" {
		_, err = dcgm.Init(dcgm.Embedded)
	} else {
		_, err = dcgm.Init(dcgm.Standalone, addr, "0")
	}
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), dcgmLibName+" not found"):
		return dcgmLoadError(err)
	case addr == "":
		return fmt.Errorf("dcgm: cannot start DCGM embedded in this process: %s (is the NVIDIA driver loaded? or run nv-hostengine and pass --dcgm-addr HOST:PORT)", oneLine(err.Error()))
	default:
		return fmt.Errorf("dcgm: cannot connect to nv-hostengine at %s: %s (is nv-hostengine running there and listening on that port? its default is 5555)", addr, oneLine(err.Error()))
	}
}

// dcgmLoadError says what to install when libdcgm.so.4 does not load.
func dcgmLoadError(err error) error {
	const fix = "install DCGM 4 (package datacenter-gpu-manager-4-core from NVIDIA's CUDA repository; " +
		"the library is needed on this host even to reach a remote nv-hostengine with --dcgm-addr), or use the nvml source"
	if libraryMissing(dcgmLibName, err) {
		return fmt.Errorf("dcgm: %s not found: %s", dcgmLibName, fix)
	}
	return fmt.Errorf("dcgm: %s cannot be loaded: %s: %s", dcgmLibName, oneLine(err.Error()), fix)
}

func (l *dcgmLibrary) Version() (string, error) {
	if l.down != nil {
		return "", l.down
	}
	v, err := dcgm.GetVersionInfo()
	return v.RawBuildInfoString, err
}

func (l *dcgmLibrary) SupportedGPUs() ([]uint, error) {
	if l.down != nil {
		return nil, l.down
	}
	return dcgm.GetSupportedDevices()
}

func (l *dcgmLibrary) FieldKnown(field uint16) bool {
	if l.down != nil {
		return false
	}
	_, err := dcgm.FieldGetByID(dcgm.Short(field))
	return err == nil
}

func (l *dcgmLibrary) Watch(gpus []uint, fields []uint16, every time.Duration) (err error) {
	if l.down != nil {
		return l.down
	}
	if err := l.unwatch(); err != nil {
		return err
	}
	name := fmt.Sprintf("tokenwatt-%d-%d", os.Getpid(), dcgmWatchSeq.Add(1))
	group, err := dcgm.CreateGroup(name)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = dcgm.DestroyGroup(group)
		}
	}()
	for _, g := range gpus {
		if err := dcgm.AddToGroup(group, g); err != nil {
			return fmt.Errorf("add gpu %d to group: %w", g, err)
		}
	}
	fieldGroup, err := dcgm.FieldGroupCreate(name, shorts(fields))
	if err != nil {
		return err
	}
	// Keep two samples, no age limit: Latest needs only the newest. A
	// newly watched field is blank until its first update; go-dcgm's
	// WatchFieldsWithGroupEx forces one (dcgmUpdateAllFields, waiting),
	// so the identities read right after are there.
	if err := dcgm.WatchFieldsWithGroupEx(fieldGroup, group, every.Microseconds(), 0, 2); err != nil {
		_ = dcgm.FieldGroupDestroy(fieldGroup)
		return err
	}
	l.group, l.fieldGroup, l.watching = group, fieldGroup, true
	return nil
}

// Latest reads through dcgmEntityGetLatestValues, whose error carries
// DCGM's status: a lost connection is told from a lost GPU.
func (l *dcgmLibrary) Latest(gpu uint, fields []uint16) ([]dcgmValue, error) {
	if l.down != nil {
		return nil, l.down
	}
	vals, err := dcgm.EntityGetLatestValues(dcgm.FE_GPU, gpu, shorts(fields))
	var derr *dcgm.Error
	if errors.As(err, &derr) && derr.Code == dcgm.DCGM_ST_CONNECTION_NOT_VALID {
		return nil, dcgmConnectionError{oneLine(derr.Error())}
	}
	if err != nil {
		return nil, err
	}
	out := make([]dcgmValue, 0, len(vals))
	for _, v := range vals {
		dv := dcgmValue{Field: uint16(v.FieldID), Type: byte(v.FieldType), Status: v.Status, TS: v.TS}
		switch v.FieldType {
		case dcgm.DCGM_FT_INT64:
			dv.Int = v.Int64()
		case dcgm.DCGM_FT_DOUBLE:
			dv.Float = v.Float64()
		case dcgm.DCGM_FT_STRING:
			dv.Str = v.String()
		}
		out = append(out, dv)
	}
	return out, nil
}

func shorts(fields []uint16) []dcgm.Short {
	ids := make([]dcgm.Short, len(fields))
	for i, f := range fields {
		ids[i] = dcgm.Short(f)
	}
	return ids
}

// unwatch releases the watch's groups, if any.
func (l *dcgmLibrary) unwatch() error {
	if !l.watching {
		return nil
	}
	l.watching = false
	return errors.Join(
		dcgm.UnwatchFields(l.fieldGroup, l.group),
		dcgm.FieldGroupDestroy(l.fieldGroup),
		dcgm.DestroyGroup(l.group),
	)
}

// Reconnect ends the connection (its groups went with it) and makes a
// new one. Until one succeeds, DCGM is not called.
func (l *dcgmLibrary) Reconnect() error {
	if errors.Is(l.down, errDCGMClosed) {
		return l.down
	}
	l.watching = false
	if l.down == nil {
		_ = dcgm.Shutdown()
	}
	l.down = initDCGM(l.addr)
	return l.down
}

func (l *dcgmLibrary) Close() error {
	if l.down != nil {
		l.down = errDCGMClosed
		return nil
	}
	l.down = errDCGMClosed
	return errors.Join(l.unwatch(), dcgm.Shutdown())
}
