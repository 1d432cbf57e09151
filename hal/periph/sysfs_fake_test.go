package periph

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeKernel mimics /sys/class/pwm in a temporary directory: writing a
// channel number to pwmchipN/export creates pwmN/ with period, duty_cycle
// and enable; unexport removes it. Like the kernel it rejects a duty cycle
// longer than the period, enabling with period 0, and exporting twice
// (EBUSY). lagWrites makes the first CanWrite checks after an export fail
// with EACCES, as while udev is still fixing permissions.
type fakeKernel struct {
	osFS
	root string

	mu        sync.Mutex
	writes    []string // "pwm0/period=20000000" relative to the chip dir
	lag       int
	lagWrites int
	neverOK   bool
}

// newFakeSysfs builds root/class/pwm with the given chips:
// name → (device basename, npwm).
func newFakeSysfs(t *testing.T, chips map[string]struct {
	dev  string
	npwm int
}) *fakeKernel {
	t.Helper()
	root := t.TempDir()
	for name, c := range chips {
		dir := filepath.Join(root, "class", "pwm", name)
		must(t, os.MkdirAll(dir, 0o755))
		devDir := filepath.Join(root, "devices", "platform", c.dev)
		must(t, os.MkdirAll(devDir, 0o755))
		must(t, os.Symlink(devDir, filepath.Join(dir, "device")))
		must(t, os.WriteFile(filepath.Join(dir, "npwm"), []byte(strconv.Itoa(c.npwm)+"\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "export"), nil, 0o200))
		must(t, os.WriteFile(filepath.Join(dir, "unexport"), nil, 0o200))
	}
	return &fakeKernel{root: root}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pathErr(op, p string, errno syscall.Errno) error {
	return &fs.PathError{Op: op, Path: p, Err: errno}
}

func (k *fakeKernel) WriteFile(p string, data []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	dir, file := filepath.Split(p)
	dir = filepath.Clean(dir)
	val := strings.TrimSpace(string(data))
	k.writes = append(k.writes, filepath.Base(dir)+"/"+file+"="+val)
	switch file {
	case "export", "unexport":
		ch, err := strconv.Atoi(val)
		if err != nil {
			return pathErr("write", p, syscall.EINVAL)
		}
		npwmB, _ := os.ReadFile(filepath.Join(dir, "npwm"))
		npwm, _ := strconv.Atoi(strings.TrimSpace(string(npwmB)))
		if ch >= npwm {
			return pathErr("write", p, syscall.ENODEV)
		}
		chDir := filepath.Join(dir, "pwm"+val)
		_, statErr := os.Stat(chDir)
		if file == "unexport" {
			if statErr != nil {
				return pathErr("write", p, syscall.EINVAL)
			}
			return os.RemoveAll(chDir)
		}
		if statErr == nil {
			return pathErr("write", p, syscall.EBUSY)
		}
		if err := os.Mkdir(chDir, 0o755); err != nil {
			return err
		}
		for f, v := range map[string]string{"period": "0", "duty_cycle": "0", "enable": "0", "polarity": "normal"} {
			if err := os.WriteFile(filepath.Join(chDir, f), []byte(v+"\n"), 0o644); err != nil {
				return err
			}
		}
		k.lag = k.lagWrites
		return nil
	case "period", "duty_cycle", "enable":
		v, err := strconv.ParseInt(val, 10, 64)
		if err != nil || v < 0 {
			return pathErr("write", p, syscall.EINVAL)
		}
		period := readNum(filepath.Join(dir, "period"))
		duty := readNum(filepath.Join(dir, "duty_cycle"))
		switch {
		case file == "duty_cycle" && v > period:
			return pathErr("write", p, syscall.EINVAL)
		case file == "period" && v < duty:
			return pathErr("write", p, syscall.EINVAL)
		case file == "enable" && v == 1 && period == 0:
			return pathErr("write", p, syscall.EINVAL)
		case file == "enable" && v > 1:
			return pathErr("write", p, syscall.EINVAL)
		}
		return k.osFS.WriteFile(p, []byte(val+"\n"))
	}
	return k.osFS.WriteFile(p, data)
}

func (k *fakeKernel) CanWrite(p string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.neverOK {
		return pathErr("open", p, syscall.EACCES)
	}
	if k.lag > 0 {
		k.lag--
		return pathErr("open", p, syscall.EACCES)
	}
	return k.osFS.CanWrite(p)
}

func readNum(p string) int64 {
	b, _ := os.ReadFile(p)
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func (k *fakeKernel) log() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.writes...)
}

func (k *fakeKernel) file(chip string, ch int, f string) string {
	b, err := os.ReadFile(filepath.Join(k.root, "class", "pwm", chip, fmt.Sprintf("pwm%d", ch), f))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimSpace(string(b))
}

func (k *fakeKernel) exported(chip string, ch int) bool {
	_, err := os.Stat(filepath.Join(k.root, "class", "pwm", chip, fmt.Sprintf("pwm%d", ch)))
	return err == nil
}
