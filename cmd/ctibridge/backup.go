package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ctibridge/ctibridge/bridge"
)

// backup copies the configured SQLite store to a new file, consistently,
// while a bridge may be serving from it.
func backup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ctibridge backup [--config FILE] [--env ENV] BACKUP_FILE")
		fmt.Fprintln(stderr, "\nCopies the SQLite store named by the configuration (database, CTIBRIDGE_DATABASE) to")
		fmt.Fprintln(stderr, "BACKUP_FILE, which must not exist, while the bridge keeps serving. For PostgreSQL use pg_dump.")
		fs.PrintDefaults()
	}
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("backup: name one file to write the backup to (flags go before it)")
	}
	file := fs.Arg(0)
	if err := bridge.Backup(ctx, cfg, file); err != nil {
		return err
	}
	size := int64(0)
	if fi, err := os.Stat(file); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(stdout, "backed up %s to %s (%d KiB)\n", cfg.Database, file, (size+1023)/1024)
	return nil
}
