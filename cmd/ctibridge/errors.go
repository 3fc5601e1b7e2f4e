package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/lifecycle"
)

// errorsCmd lists and retries the integration error log straight from the
// store; a running bridge picks retried calls up within its poll interval.
// Its flags are the admin API's filter parameters, read by the same parser.
func errorsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry") {
		fmt.Fprintln(stderr, "usage: ctibridge errors list [flags] | ctibridge errors retry [flags] [ID...]")
		return flag.ErrHelp
	}
	sub := args[0]
	fs := flag.NewFlagSet("errors "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "include resolved entries (list)")
	q := url.Values{}
	for _, p := range []struct{ name, usage string }{
		{"operation", "only this operation, e.g. \"create interaction\""},
		{"severity", "only this severity: error or warning"},
		{"contact", "only this master contact id"},
		{"status", "only this ServiceNow HTTP status"},
		{"since", "only entries seen within this long, e.g. 1h"},
		{"limit", "at most this many (list; default 50)"},
	} {
		fs.Func(p.name, p.usage, func(v string) error { q.Set(p.name, v); return nil })
	}
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		return err
	}
	if *all {
		q.Set("open", "false")
	}
	if q.Get("limit") == "" {
		q.Set("limit", "50")
	}
	f, err := lifecycle.ParseErrorFilter(q, time.Now())
	if err != nil {
		return fmt.Errorf("errors %s: -%w", sub, err)
	}
	log, closeStore, err := bridge.OpenErrorLog(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	if sub == "list" {
		entries, err := log.List(ctx, f)
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
	var n int
	if fs.NArg() > 0 {
		ids := make([]int64, 0, fs.NArg())
		for _, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return fmt.Errorf("errors retry: %q is not an entry id", a)
			}
			ids = append(ids, id)
		}
		n, err = log.Retry(ctx, ids...)
	} else {
		n, err = log.RetryMatching(ctx, f)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d call(s) queued for retry\n", n)
	return nil
}
