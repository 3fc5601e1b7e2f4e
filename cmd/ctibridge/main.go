// Command ctibridge keeps ServiceNow Interaction records in step with NICE CXone
// voice calls. This file only dispatches subcommands; each lives in its own package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/ctibridge/ctibridge/cxonesim"
	"github.com/ctibridge/ctibridge/demo"
	"github.com/ctibridge/ctibridge/doctor"
	"github.com/ctibridge/ctibridge/simulate"
	"github.com/ctibridge/ctibridge/snowsim"
)

// command is one subcommand: a one-line summary and the function that runs it.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run the bridge: Studio API, workers, console, metrics", serve},
		"demo":     {"run everything on built-in defaults with ~20 scripted calls", demo.Main},
		"snowsim":  {"run the ServiceNow simulator", snowsim.Main},
		"cxonesim": {"run the CXone simulator (access keys, agents, active and completed contacts)", cxonesim.Main},
		"simulate": {"drive a bridge with generated calls (load, soak, acceptance)", simulate.Main},
		"doctor":   {"check a configuration against a real instance: reachability, auth, rights", doctor.Main},
		"keys":     {"make a Studio API key: keys new NAME", keys},
		"errors":   {"list or retry the integration error log", errorsCmd},
		"backup":   {"copy the SQLite store to a new file while the bridge serves: backup FILE", backup},
	}
}

func main() { os.Exit(mainExit(os.Args[1:])) }

// mainExit runs a command until it finishes or SIGINT/SIGTERM arrives, and
// returns the process exit status.
func mainExit(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, args, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ctibridge:", err)
		}
		return exitCode(err)
	}
	return 0
}

// exitCoder lets a subcommand choose its exit status (doctor, demo --once).
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return flag.ErrHelp
		}
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: ctibridge <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'ctibridge <command> -h' for a command's flags.")
}
