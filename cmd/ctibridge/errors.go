package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ctibridge/ctibridge/store"
)

// errorsCmd lists and retries the integration error log straight from the
// store; a running bridge picks retried calls up within its poll interval.
func errorsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry") {
		fmt.Fprintln(stderr, "usage: ctibridge errors list [flags] | ctibridge errors retry [flags] [ID...]")
		return flag.ErrHelp
	}
	sub := args[0]
	fs := flag.NewFlagSet("errors "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "include resolved entries (list)")
	op := fs.String("operation", "", "only this operation, e.g. \"create interaction\"")
	status := fs.Int("status", 0, "only this ServiceNow HTTP status")
	since := fs.Duration("since", 0, "only entries seen within this long, e.g. 1h")
	limit := fs.Int("limit", 50, "at most this many (list)")
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	f := store.ErrorFilter{OpenOnly: !*all, Operation: *op, Status: *status, Limit: *limit}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	if sub == "list" {
		entries, err := db.Errors(ctx, f)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCONTACT\tOPERATION\tSEVERITY\tSTATUS\tATTEMPTS\tLAST\tMESSAGE")
		for _, e := range entries {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", e.ID, e.MasterID, e.Operation, e.Severity, e.Status, e.Attempts,
				e.LastAt.Format(time.RFC3339), e.Message)
		}
		return tw.Flush()
	}
	var ids []string
	if fs.NArg() > 0 {
		for _, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return fmt.Errorf("errors retry: %q is not an entry id", a)
			}
			e, err := db.Error(ctx, id)
			if err != nil {
				return err
			}
			ids = append(ids, e.MasterID)
		}
	} else {
		f.Limit = 100000
		entries, err := db.Errors(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.MasterID != "" {
				ids = append(ids, e.MasterID)
			}
		}
	}
	n, err := db.Retry(ctx, ids...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d call(s) queued for retry\n", n)
	return nil
}
