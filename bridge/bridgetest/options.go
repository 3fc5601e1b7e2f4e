package bridgetest

import "log/slog"

// Option tunes Serve.
type Option func(*options)

type options struct {
	log   *slog.Logger
	admin *string
}

// WithLogger gives the bridge a logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithAdmin serves the admin listener too and stores its address in addr.
func WithAdmin(addr *string) Option { return func(o *options) { o.admin = addr } }
