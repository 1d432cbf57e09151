// Package sim runs pinshadow without hardware and without AWS: the local
// cloud in-process, the agent on simulated hardware, and a scripted cloud
// side, with a live account of what happens. It is what `agent sim` runs.
//
// # The world
//
// NewWorld builds the fake hardware for a configuration: a register-level
// chip model (hal/fake/chips) at every configured I2C address, a thermal
// model in which the heater relay warms the room and the fan cools it
// (pushed into every temperature chip, with relative humidity falling as
// the air warms), a soil probe on every ADS1115 input that slowly dries,
// and inputs a scenario presses. Output changes made through World.HAL are
// reported with their time, so the account can tell how long a desired
// change took to reach a pin.
//
// # The scenario
//
// A scenario (ParseScenario) is a YAML list of timed steps: desired
// changes from the cloud side, presses, I2C faults, a broker restart,
// ambient temperature changes and narration. It is checked like a
// configuration: every problem at once with file:line:column, and the
// devices it names against the configuration (Scenario.Check).
//
// # The cloud side and the account
//
// Actor plays the cloud application: it publishes desired updates with
// its own client tokens and follows every update/documents message, so
// Account can print, per desired change, the output write, the reported
// value accepted and the moment the delta cleared, each with its latency,
// next to what the agent itself says (rejections with their reasons,
// on_reject patches, faults, reconnects).
package sim
