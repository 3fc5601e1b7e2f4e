package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/config"
)

func loadConfig(fs *flag.FlagSet, args []string) (*config.Config, error) {
	path := fs.String("config", os.Getenv("CTIBRIDGE_CONFIG"), "YAML configuration file (or CTIBRIDGE_CONFIG)")
	env := fs.String("env", "", "environment to use (overrides env / CTIBRIDGE_ENV)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	getenv := os.Getenv
	if *env != "" {
		getenv = func(k string) string {
			if k == "CTIBRIDGE_ENV" {
				return *env
			}
			return os.Getenv(k)
		}
	}
	return config.Load(*path, getenv)
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	b, err := bridge.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	var admin net.Listener
	if cfg.AdminListen != "" {
		if admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
		}
	}
	log.Info("ctibridge serving", "listen", ln.Addr().String(), "env", cfg.Env, "instance", cfg.Selected().Instance,
		"auth", cfg.Selected().Auth.Method(), "database", b.DB.Dialect())
	return b.Serve(ctx, ln, admin)
}
