// Package config reads the agent's YAML configuration and validates it
// completely before anything touches hardware or the network: the thing
// name, the connection, the board, the devices with their driver options,
// and the mapping of shadow keys to device properties.
//
// # Errors
//
// Parse reports every problem at once, as Errors: a list sorted by file
// and line, each entry "file:line:column: what is wrong; what is allowed",
// with "did you mean" for misspelt keys, drivers, device ids, properties
// and pins. Values keep their position because the files are parsed into
// yaml.Node trees and read by hand, not decoded into structs.
//
// # Files
//
// A file may include others (include: [devices.yaml], paths relative to
// the including file); devices and shadows lists are concatenated, every
// other section may be set in one file only. Scalar values may use
// ${VAR} or ${VAR:-default}; an unset variable without a default is a
// problem at its line. Durations need a unit ("30s", "5m").
//
// # Purity
//
// Parse takes the file reader, the environment lookup and the board
// detection as Options, so tests need no files, environment or hardware;
// Load is the thin wrapper for the command line.
//
// # Result
//
// A Config holds the connection settings (Connection.IOT gives an
// iot.Config), the devices ready for devices.Registry.Open (options decoded
// and validated, pin names replaced by the HAL's names on the chosen board
// profile), the shadows, the reconcile.Spec (Spec) and the table `agent
// plan` prints (Plan).
package config
