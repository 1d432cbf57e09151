package periph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/pinshadow/pinshadow/hal"
)

func TestBusNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"1", 1, false}, {"I2C1", 1, false}, {"/dev/i2c-1", 1, false}, {"i2c-20", 20, false},
		{"", 0, true}, {"I2C", 0, true}, {"/dev/i2c-x", 0, true}, {"-1", 0, true}, {"spi0", 0, true},
	} {
		got, err := BusNumber(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("BusNumber(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestI2CError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{errors.New("sysfs-i2c: remote I/O error"), hal.ErrNACK},
		{errors.New("sysfs-i2c: no such device or address"), hal.ErrNACK},
		{errors.New("sysfs-i2c: connection timed out"), hal.ErrTimeout},
		{errors.New("sysfs-i2c: invalid address"), nil},
	} {
		got := I2CError("1", 0x76, tc.err)
		if tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("I2CError(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if tc.want == nil && (errors.Is(got, hal.ErrNACK) || errors.Is(got, hal.ErrTimeout)) {
			t.Errorf("I2CError(%v) = %v: misclassified", tc.err, got)
		}
		if !strings.Contains(got.Error(), "0x76") {
			t.Errorf("I2CError should name the address: %v", got)
		}
	}
}

// nackBus answers every transaction like the bcm2835 driver with nothing at the address.
type nackBus struct{ i2ctest.Playback }

func (*nackBus) Tx(uint16, []byte, []byte) error {
	return fmt.Errorf("sysfs-i2c: %v", "remote I/O error")
}

func TestOpenI2C(t *testing.T) {
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: 0x23, W: []byte{0x10}, R: []byte{0x01, 0x02}}}, DontPanic: true}
	var asked []string
	h, err := New(Options{FindLine: noLines, OpenI2C: func(name string) (i2c.BusCloser, error) {
		asked = append(asked, name)
		switch name {
		case "1":
			return pb, nil
		case "3":
			return &nackBus{}, nil
		}
		return nil, fmt.Errorf("i2creg: can't open unknown bus: %q", name)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	b, err := h.OpenI2C(ctx, "/dev/i2c-1")
	if err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 2)
	if err := (&i2c.Dev{Bus: b, Addr: 0x23}).Tx([]byte{0x10}, r); err != nil || r[0] != 1 || r[1] != 2 {
		t.Errorf("Tx: %v %v", err, r)
	}
	if err := b.SetSpeed(400 * physic.KiloHertz); err != nil {
		t.Errorf("SetSpeed passes through: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v (all playback ops consumed?)", err)
	}
	n, _ := h.OpenI2C(ctx, "I2C3")
	if err := n.Tx(0x40, []byte{0}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK: %v", err)
	}
	if _, err := h.OpenI2C(ctx, "2"); !errors.Is(err, hal.ErrNotFound) || !strings.Contains(err.Error(), "i2c_arm=on") {
		t.Errorf("missing bus: %v", err)
	}
	if _, err := h.OpenI2C(ctx, "I2Cx"); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if strings.Join(asked, ",") != "1,3,2" {
		t.Errorf("opener asked for %q; names must be normalised to the bus number", asked)
	}
}
