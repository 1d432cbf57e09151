package builtin

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/devices/ads1115"
	"github.com/pinshadow/pinshadow/devices/aht20"
	"github.com/pinshadow/pinshadow/devices/bh1750"
	"github.com/pinshadow/pinshadow/devices/bmx280"
	"github.com/pinshadow/pinshadow/devices/cputemp"
	"github.com/pinshadow/pinshadow/devices/ds18b20"
	"github.com/pinshadow/pinshadow/devices/gpio"
	"github.com/pinshadow/pinshadow/devices/ina219"
	"github.com/pinshadow/pinshadow/devices/mcp23017"
	"github.com/pinshadow/pinshadow/devices/pca9685"
	"github.com/pinshadow/pinshadow/devices/pwm"
	"github.com/pinshadow/pinshadow/devices/sht3x"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
)

func TestNames(t *testing.T) {
	want := []string{"ads1115", "aht20", "bh1750", "bme280", "bmp280", "button", "cpu_temp", "ds18b20", "fan", "ina219",
		"led", "mcp23017", "pca9685", "pir", "pwm", "relay", "servo", "sht3x", "switch"}
	if got := NewRegistry().Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v\nwant     %v", got, want)
	}
}

// wire fills in the wiring fields a config would give.
func wire(o devices.Options) {
	switch o := o.(type) {
	case *gpio.OutputOptions:
		o.Pin = "GPIO17"
	case *gpio.InputOptions:
		o.Pin = "GPIO27"
	case *pwm.DutyOptions:
		o.Channel = "pwmchip0/0"
	case *pwm.ServoOptions:
		o.Channel = "pwmchip0/1"
		mid := 90.0
		o.Initial = &mid
	case *bmx280.Options:
		o.Bus = "1"
		o.Address = 0x77 // the BMP280 sits at 0x77, the BME280 moved below
	case *sht3x.Options:
		o.Bus = "1"
	case *bh1750.Options:
		o.Bus, o.Mode = "1", "low"
	case *ads1115.Options:
		o.Bus, o.DataRate = "1", 860
	case *pca9685.Options:
		o.Bus = "1"
	case *mcp23017.Options:
		o.Bus = "1"
		o.Lines = []mcp23017.Line{{Line: "A0", Name: "pump", Mode: "output"}, {Line: "B0", Name: "float", Mode: "input", Pull: "up"}}
	case *ina219.Options:
		o.Bus = "1"
	case *aht20.Options:
		o.Bus = "1"
	case *ds18b20.Options, *cputemp.Options:
	}
}

// TestEveryDriver opens each built-in driver through the registry, on the
// fake HAL with every chip model attached, the way the agent will: it
// knows nothing of the chips, only names, options, properties and values.
func TestEveryDriver(t *testing.T) {
	h := fake.New()
	defer h.Close()
	bus := h.Bus("1")
	bus.Attach(0x76, chips.NewBME280(chips.DatasheetCalibration()))
	bus.Attach(0x77, chips.NewBMP280(chips.DatasheetCalibration()))
	bus.Attach(0x44, chips.NewSHT3x())
	bus.Attach(0x23, chips.NewBH1750())
	bus.Attach(0x48, chips.NewADS1115())
	bus.Attach(0x40, chips.NewPCA9685())
	bus.Attach(0x20, chips.NewMCP23017())
	bus.Attach(0x41, chips.NewINA219(0.1))
	bus.Attach(0x38, chips.NewAHT20())
	root := t.TempDir()
	for path, content := range map[string]string{
		"sys/class/thermal/thermal_zone0/temp":           "51234\n",
		"sys/bus/w1/devices/28-0316a2792aff/temperature": "19500\n",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buses := devices.NewSharedBuses(h)
	defer buses.Close()
	env := devices.Env{Lines: h, Buses: buses, SysRoot: root}
	reg := NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) {
			drv, err := reg.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			o := drv.NewOptions()
			wire(o)
			if name == "bme280" {
				o.(*bmx280.Options).Address = 0x76
			}
			if name == "ina219" {
				o.(*ina219.Options).Address = 0x41
			}
			props, err := drv.Properties(o)
			if err != nil {
				t.Fatal(err)
			}
			checkMetadata(t, props)
			d, err := drv.Open(ctx, env, o)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if !reflect.DeepEqual(d.Properties(), props) {
				t.Errorf("device properties differ from the driver's metadata")
			}
			r, err := d.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for k := range r {
				got = append(got, k)
			}
			for _, p := range props {
				if p.Readable {
					want = append(want, p.Name)
					if err := p.Check(r[p.Name]); err != nil {
						t.Errorf("reading %s = %v: %v", p.Name, r[p.Name], err)
					}
				}
			}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Read returned %v, want every readable property %v", got, want)
			}
			// The reporter and the reconcile loop read concurrently.
			var wg sync.WaitGroup
			for i := 0; i < 3; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := d.Read(ctx); err != nil {
						t.Errorf("concurrent Read: %v", err)
					}
				}()
			}
			wg.Wait()
			// Outputs are written, then read back.
			for _, p := range props {
				if !p.Writable {
					continue
				}
				v := devices.Bool(true)
				if p.Type == devices.TypeNumber {
					v = devices.Number(p.Range.Min + (p.Range.Max-p.Range.Min)*0.25)
				}
				if err := d.Write(ctx, p.Name, v); err != nil {
					t.Fatalf("Write %s = %v: %v", p.Name, v, err)
				}
				r, err := d.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if r[p.Name] != v {
					t.Errorf("wrote %s = %v, read back %v", p.Name, v, r[p.Name])
				}
			}
		})
	}
}

func checkMetadata(t *testing.T, props []devices.Property) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range props {
		if p.Name == "" || seen[p.Name] {
			t.Errorf("property name %q empty or duplicated", p.Name)
		}
		seen[p.Name] = true
		if !p.Readable && !p.Writable {
			t.Errorf("%s: neither readable nor writable", p.Name)
		}
		if p.Type == devices.TypeNumber && (p.Range == nil || p.Unit == "") {
			t.Errorf("%s: number without range or unit", p.Name)
		}
		if p.Description == "" {
			t.Errorf("%s: no description", p.Name)
		}
	}
}
