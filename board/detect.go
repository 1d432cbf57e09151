package board

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// DefaultModelPath is where the kernel exposes the board model.
const DefaultModelPath = "/proc/device-tree/model"

// Detection is the outcome of choosing a profile.
type Detection struct {
	Profile Profile
	// Model is the device-tree model string ("" if unread).
	Model string
	// Source says how the profile was chosen: "override", "device-tree" or
	// "fallback" (generic because the model is unknown or unreadable).
	Source string
	// Note explains a fallback in words a user can act on; empty otherwise.
	Note string
}

// MatchModel maps a /proc/device-tree/model string to a profile name.
// Order matters: "Raspberry Pi 400" must not be taken for a Pi 4.
func MatchModel(model string) (string, bool) {
	m := strings.TrimSpace(model)
	rules := []struct{ prefix, name string }{
		{"Raspberry Pi 5 Model B", "pi5"},
		{"Raspberry Pi Compute Module 4 ", "cm4"}, // space: not "4S"
		{"Raspberry Pi 400 ", "pi400"},
		{"Raspberry Pi 4 Model B", "pi4b"},
		{"Raspberry Pi 3 Model B Plus", "pi3b"},
		{"Raspberry Pi 3 Model B", "pi3b"},
		{"Raspberry Pi Zero 2 W", "zero2w"},
		{"Raspberry Pi Zero W", "zero"},
		{"Raspberry Pi Zero Rev", "zero"},
	}
	for _, r := range rules {
		if strings.HasPrefix(m, r.prefix) {
			return r.name, true
		}
	}
	return "", false
}

// closestBySoC suggests a profile for an unknown Raspberry Pi model.
func closestBySoC(model string) string {
	switch {
	case strings.Contains(model, "Compute Module 5"), strings.Contains(model, "Pi 500"):
		return "pi5"
	case strings.Contains(model, "Pi 4"), strings.Contains(model, "Compute Module 4"):
		return "pi4b"
	case strings.Contains(model, "Pi 3"), strings.Contains(model, "Pi 2"):
		return "pi3b"
	}
	return ""
}

// ParseModelFile turns the raw file (NUL-terminated) into the model string.
func ParseModelFile(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// Detect reads the model file (DefaultModelPath if modelPath is empty) and
// picks the profile. It never fails: an unknown or unreadable model gives
// the generic profile with a Note saying why and how to override.
func Detect(modelPath string) Detection {
	if modelPath == "" {
		modelPath = DefaultModelPath
	}
	generic, _ := ByName("generic")
	b, err := os.ReadFile(modelPath)
	if err != nil {
		note := fmt.Sprintf("cannot read %s (%v): using the generic profile; set the board in the configuration (one of %s)", modelPath, err, strings.Join(Names(), ", "))
		if errors.Is(err, fs.ErrNotExist) {
			note = fmt.Sprintf("no %s (not a device-tree board): using the generic profile, lines by chip/offset; set the board to override", modelPath)
		}
		return Detection{Profile: generic, Source: "fallback", Note: note}
	}
	model := ParseModelFile(b)
	if name, ok := MatchModel(model); ok {
		p, _ := ByName(name)
		return Detection{Profile: p, Model: model, Source: "device-tree"}
	}
	note := fmt.Sprintf("unknown board %q: using the generic profile (lines by chip/offset, no header map)", model)
	if strings.HasPrefix(model, "Raspberry Pi") {
		if s := closestBySoC(model); s != "" {
			note += fmt.Sprintf("; if its 40-pin header matches, set board: %s", s)
		}
	}
	return Detection{Profile: generic, Model: model, Source: "fallback", Note: note + "; set the board in the configuration to override"}
}

// Select returns the override's profile if override is set ("" or "auto"
// means detect), else Detect(modelPath). An unknown override is an error
// (with a suggestion), not a silent fallback: the user asked for something.
func Select(override, modelPath string) (Detection, error) {
	if o := strings.TrimSpace(override); o != "" && !strings.EqualFold(o, "auto") {
		p, err := ByName(o)
		if err != nil {
			return Detection{}, err
		}
		d := Detection{Profile: p, Source: "override"}
		if det := Detect(modelPath); det.Model != "" && det.Source == "device-tree" && det.Profile.Name != p.Name {
			d.Model = det.Model
			d.Note = fmt.Sprintf("board overridden to %s although the device tree says %q (%s)", p.Name, det.Model, det.Profile.Name)
		}
		return d, nil
	}
	return Detect(modelPath), nil
}

func normalizeBoard(s string) string {
	s = strings.NewReplacer(" ", "", "-", "", "_", "").Replace(strings.ToLower(strings.TrimSpace(s)))
	return strings.NewReplacer("raspberrypi", "pi", "rpi", "pi", "plus", "+").Replace(s)
}
