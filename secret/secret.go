// Package secret holds credentials in a type that never prints them.
//
// A Secret formats as "[redacted]" through fmt, log/slog and encoding/json, so a
// credential that ends up in a log line, an error string or a metrics label by
// mistake leaks nothing. Call Reveal only at the point the value goes on the wire.
package secret

import "log/slog"

// Secret is a credential: a password, client secret, API key or token.
type Secret string

const redacted = "[redacted]"

// Reveal returns the credential itself. Use it only to authenticate.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether no credential is set.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer so %#v does not leak either.
func (s Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (JSON, YAML output).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText implements encoding.TextUnmarshaler so configs can hold secrets.
func (s *Secret) UnmarshalText(b []byte) error { *s = Secret(b); return nil }
