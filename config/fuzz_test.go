package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinshadow/pinshadow/config"
)

// FuzzLoad feeds arbitrary text as a configuration (and as a file it may
// include): Parse must never panic, and every problem must carry a
// position in a file that was read.
func FuzzLoad(f *testing.F) {
	shipped, _ := filepath.Glob("../configs/*.yaml")
	for _, p := range shipped {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b), "")
		}
	}
	f.Add(head+"include: inc.yaml\n", rig+"      heater: heater\n")
	f.Add(head+"include: [inc.yaml, inc.yaml]\n", "include: main.yaml\n")
	f.Fuzz(func(t *testing.T, main, inc string) {
		fsys := files{"main.yaml": main, "inc.yaml": inc}
		cfg, err := config.Parse("main.yaml", config.Options{ReadFile: fsys.read, LookupEnv: env(map[string]string{"A": "1"})})
		if err == nil {
			if cfg == nil {
				t.Fatal("nil Config without an error")
			}
			_ = cfg.Spec()
			_ = cfg.Plan()
			return
		}
		var errs config.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %v (%T) is not a non-empty config.Errors", err, err)
		}
		for _, p := range errs {
			if (p.Pos.File != "main.yaml" && p.Pos.File != "inc.yaml") || p.Pos.Line < 1 || p.Pos.Col < 0 || p.Msg == "" {
				t.Fatalf("problem without a proper position: %#v", p)
			}
		}
	})
}
