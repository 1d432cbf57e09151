package iot

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Sentinel errors callers act on; test with errors.Is. Typed errors below
// carry details and match these with errors.Is as documented.
var (
	// ErrConnectTimeout: no connection (CONNACK) within the connect timeout
	// or the caller's context. The client keeps retrying in the background.
	ErrConnectTimeout = errors.New("iot: connect timed out")
	// ErrDisconnectTimeout: Close did not finish within its context.
	ErrDisconnectTimeout = errors.New("iot: disconnect timed out")
	// ErrOperationTimeout: no PUBACK/SUBACK/UNSUBACK within the operation
	// timeout. The packet may still be delivered later.
	ErrOperationTimeout = errors.New("iot: operation timed out")
	// ErrNotConnected: the client is offline and the request was not queued.
	ErrNotConnected = errors.New("iot: not connected")
	// ErrClosed: the client has been closed.
	ErrClosed = errors.New("iot: client closed")
	// ErrQueueFull: offline and the offline queue is full with DropNewest
	// (the message was discarded).
	ErrQueueFull = errors.New("iot: offline publish queue full")
	// ErrQueueDisabled: offline and the offline queue is disabled.
	ErrQueueDisabled = errors.New("iot: offline publish queue disabled")
	// ErrSubscribeRejected: the broker answered a SUBSCRIBE with failure
	// (SUBACK return code 0x80); see *SubscribeRejectedError.
	ErrSubscribeRejected = errors.New("iot: subscription rejected by broker")
	// ErrConnectRefused: the broker refused the CONNECT (CONNACK code 1–5);
	// see *ConnectRefusedError.
	ErrConnectRefused = errors.New("iot: connection refused by broker")
	// ErrConfig: invalid configuration; see *ConfigError and *FileError.
	ErrConfig = errors.New("iot: invalid configuration")
	// ErrTLS: certificate or TLS problem (local files or the handshake);
	// see *FileError, *KeyPermissionError and *TLSError.
	ErrTLS = errors.New("iot: TLS error")
	// ErrCredentials: no AWS credentials for the WebSocket SigV4 signature.
	ErrCredentials = errors.New("iot: no AWS credentials for SigV4")
	// ErrQueueStorage: the on-disk offline queue could not be read or written.
	ErrQueueStorage = errors.New("iot: offline queue storage error")
)

// ConfigError is an invalid configuration value. It matches ErrConfig.
type ConfigError struct {
	Field  string // e.g. "keep_alive"
	Value  string // the offending value
	Reason string // what is wrong and what is accepted
}

// Error describes the problem and what to do about it.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("iot: invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// FileError is a certificate, key or CA file that is missing, unreadable or
// unusable. It matches ErrConfig and ErrTLS, and wraps the cause (for
// example fs.ErrNotExist or fs.ErrPermission).
type FileError struct {
	Role string // "certificate", "private key" or "CA"
	Path string
	Err  error
	Hint string // what to do about it
}

// Error describes the problem and what to do about it.
func (e *FileError) Error() string {
	msg := fmt.Sprintf("iot: %s file %s: %v", e.Role, e.Path, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConfig or ErrTLS.
func (e *FileError) Is(target error) bool { return target == ErrConfig || target == ErrTLS }

// KeyPermissionError is a private key file readable or writable by group or
// others. It matches ErrConfig, ErrTLS and fs.ErrPermission.
type KeyPermissionError struct {
	Path string
	Mode fs.FileMode // the permission bits found
}

// Error describes the problem and what to do about it.
func (e *KeyPermissionError) Error() string {
	return fmt.Sprintf("iot: private key %s is accessible by group or others (mode %04o); it must be readable by its owner only (mode 0600 or 0400): run chmod 600 %s",
		e.Path, uint32(e.Mode.Perm()), e.Path)
}

// Is reports whether target is ErrConfig, ErrTLS or fs.ErrPermission.
func (e *KeyPermissionError) Is(target error) bool {
	return target == ErrConfig || target == ErrTLS || target == fs.ErrPermission
}

// TLSError is a failed TLS handshake or certificate verification with the
// broker. It matches ErrTLS and wraps the crypto/tls or crypto/x509 error.
type TLSError struct {
	Endpoint string
	Err      error
	Hint     string
}

// Error describes the problem and what to do about it.
func (e *TLSError) Error() string {
	msg := fmt.Sprintf("iot: TLS with %s failed: %v", e.Endpoint, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the cause.
func (e *TLSError) Unwrap() error { return e.Err }

// Is reports whether target is ErrTLS.
func (e *TLSError) Is(target error) bool { return target == ErrTLS }

// ConnectRefusedError is a CONNACK with a non-zero return code. It matches
// ErrConnectRefused.
type ConnectRefusedError struct {
	Endpoint string
	Code     byte // 1 protocol version, 2 client id, 3 server unavailable, 4 bad username/password, 5 not authorised
}

// Error describes the problem and what to do about it.
func (e *ConnectRefusedError) Error() string {
	reasons := map[byte]string{
		1: "unacceptable protocol version",
		2: "client identifier rejected",
		3: "server unavailable",
		4: "bad username or password",
		5: "not authorised (AWS IoT: the certificate's policy must allow iot:Connect for this client id)",
	}
	r, ok := reasons[e.Code]
	if !ok {
		r = "unknown reason"
	}
	return fmt.Sprintf("iot: %s refused the connection: CONNACK code %d, %s", e.Endpoint, e.Code, r)
}

// Is reports whether target is ErrConnectRefused.
func (e *ConnectRefusedError) Is(target error) bool { return target == ErrConnectRefused }

// SubscribeRejectedError lists the filters the broker refused (SUBACK 0x80),
// typically because the policy does not allow iot:Subscribe on them. It
// matches ErrSubscribeRejected.
type SubscribeRejectedError struct {
	Filters []string
}

// Error describes the problem and what to do about it.
func (e *SubscribeRejectedError) Error() string {
	return fmt.Sprintf("iot: broker rejected subscription to %s (SUBACK 0x80; check the policy allows iot:Subscribe on these filters)", strings.Join(e.Filters, ", "))
}

// Is reports whether target is ErrSubscribeRejected.
func (e *SubscribeRejectedError) Is(target error) bool { return target == ErrSubscribeRejected }

// permanent reports whether a connect error will not go away by retrying
// unchanged (Connect returns it immediately; the background loop still
// retries with backoff, since files, clocks and policies can be fixed).
func permanent(err error) bool {
	var refused *ConnectRefusedError
	if errors.As(err, &refused) {
		return refused.Code != 3
	}
	return errors.Is(err, ErrTLS) || errors.Is(err, ErrCredentials) || errors.Is(err, ErrConfig)
}
