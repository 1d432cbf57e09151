package cputemp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

func zone(t *testing.T, root string, n int, content string) {
	t.Helper()
	dir := filepath.Join(root, "sys/class/thermal", "thermal_zone"+string(rune('0'+n)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "temp"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	root := t.TempDir()
	zone(t, root, 0, "48312\n")
	zone(t, root, 1, "-5000\n")
	d, err := Driver().Open(context.Background(), devices.Env{SysRoot: root}, &Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.Read(context.Background()); err != nil || r["temperature"].Number() != 48.312 {
		t.Errorf("zone 0: %v, %v; want 48.312 °C", r, err)
	}
	d1, err := New(context.Background(), root, Options{Zone: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d1.Read(context.Background()); err != nil || r["temperature"].Number() != -5 {
		t.Errorf("zone 1: %v, %v; want −5 °C", r, err)
	}
	zone(t, root, 1, "hot\n")
	if _, err := d1.Read(context.Background()); err == nil {
		t.Error("garbage in temp parsed")
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(context.Background(), t.TempDir(), Options{}); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("no thermal zone: %v", err)
	}
	o := Options{Zone: -1}
	if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("zone −1: %v", err)
	}
	root := t.TempDir()
	zone(t, root, 0, "1000")
	d, _ := New(context.Background(), root, Options{})
	if err := d.Write(context.Background(), "temperature", devices.Number(1)); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("write: %v", err)
	}
}
