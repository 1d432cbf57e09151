package ds18b20

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

const good = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"

func sensor(t *testing.T, root, id, file, content string) {
	t.Helper()
	dir := filepath.Join(root, Dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if file != "" {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseW1Slave(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  error
	}{
		{good, 23.125, nil},
		// 0xFF5E = −162 sixteenths: −10.125 °C (datasheet table 1).
		{"5e ff 4b 46 7f ff 02 10 d2 : crc=d2 YES\n5e ff 4b 46 7f ff 02 10 d2 t=-10125\n", -10.125, nil},
		{"72 01 4b 46 7f ff 0e 10 57 : crc=00 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 0, devices.ErrChecksum},
		{"00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n", 0, devices.ErrNotReady},
		{"50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n", 0, devices.ErrNotReady},
		{"garbage", 0, nil},
	} {
		got, err := ParseW1Slave(tc.in)
		switch {
		case tc.in == "garbage":
			if err == nil {
				t.Errorf("garbage parsed as %v", got)
			}
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: %v, want %v", tc.in, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%q = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestReadThroughSysfs(t *testing.T) {
	root := t.TempDir()
	sensor(t, root, "28-0316a2792aff", "w1_slave", good)
	sensor(t, root, "00-0000000000aa", "", "") // a non-thermometer on the bus
	reg, err := devices.NewRegistry(Driver())
	if err != nil {
		t.Fatal(err)
	}
	d, err := reg.Open(context.Background(), "ds18b20", devices.Env{SysRoot: root}, &Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(context.Background())
	if err != nil || r["temperature"].Number() != 23.125 {
		t.Errorf("Read = %v, %v; want 23.125 °C", r, err)
	}
	// Newer kernels: only the temperature attribute.
	sensor(t, root, "28-00000a0b0c0d", "temperature", "-1250\n")
	d2, err := New(context.Background(), root, Options{ID: "28-00000a0b0c0d"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d2.Read(context.Background()); err != nil || r["temperature"].Number() != -1.25 {
		t.Errorf("temperature attribute: %v, %v; want −1.25 °C", r, err)
	}
	// Two thermometers now: the id must be given.
	if _, err := New(context.Background(), root, Options{}); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), "28-00000a0b0c0d") {
		t.Errorf("two sensors, no id: %v", err)
	}
}

func TestErrors(t *testing.T) {
	root := t.TempDir()
	if _, err := New(context.Background(), root, Options{}); !errors.Is(err, hal.ErrNotFound) || !strings.Contains(err.Error(), "w1-gpio") {
		t.Errorf("no sensor: %v", err)
	}
	if _, err := New(context.Background(), root, Options{ID: "28-000000000001"}); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("missing id: %v", err)
	}
	o := Options{ID: "28-XYZ"}
	if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("bad id: %v", err)
	}
	sensor(t, root, "28-000000000001", "w1_slave", good)
	d, err := New(context.Background(), root, Options{ID: "28-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	// The sensor disappears (unplugged): the kernel removes its directory.
	if err := os.RemoveAll(filepath.Join(root, Dir, "28-000000000001")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(context.Background()); err == nil {
		t.Error("Read of a removed sensor succeeded")
	}
}
