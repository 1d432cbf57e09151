// Package configs carries the configuration files shipped in this
// directory. The simulated greenhouse (sim.yaml) and the default scenario
// of `agent sim` (scenarios/default.yaml) are embedded in the binary, so
// `go run ./cmd/agent sim` works from any directory; the files on disk stay
// the ones people read and edit.
package configs

import "embed"

//go:embed sim.yaml scenarios/default.yaml
var files embed.FS

// SimName and DefaultScenarioName are the files' paths in the repository,
// used as their names in messages.
const (
	SimName             = "configs/sim.yaml"
	DefaultScenarioName = "configs/scenarios/default.yaml"
)

// Sim returns configs/sim.yaml as built into the binary.
func Sim() []byte { return mustRead("sim.yaml") }

// DefaultScenario returns configs/scenarios/default.yaml as built into the
// binary.
func DefaultScenario() []byte { return mustRead("scenarios/default.yaml") }

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		// The embed directive guarantees the file: this is unreachable.
		panic(err)
	}
	return b
}
