package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// runCerts writes a development PKI for the local cloud's mutual TLS.
func runCerts(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "certs", "--out DIR --thing NAME [--force]")
	out := fs.String("out", "", "directory to write ca.crt/ca.key, server.crt/server.key, device.crt/device.key (required)")
	thing := fs.String("thing", "", "thing name: the device certificate's common name (required)")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	if *thing == "" {
		return fmt.Errorf("%w: --thing is required", errUsage)
	}
	if err := devcerts.WriteSet(*out, *thing, *force); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s, %s, %s, %s, %s, %s in %s (device CN %q)\n",
		devcerts.CACertFile, devcerts.CAKeyFile, devcerts.ServerCertFile, devcerts.ServerKeyFile,
		devcerts.DeviceCertFile, devcerts.DeviceKeyFile, filepath.Clean(*out), *thing)
	return nil
}
