package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ctibridge/ctibridge/api"
)

func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "new" {
		fmt.Fprintln(stderr, "usage: ctibridge keys new NAME")
		return flag.ErrHelp
	}
	if len(args) != 2 || args[1] == "" {
		return errors.New("keys new: give the key a name, e.g. 'ctibridge keys new studio-prod'")
	}
	key, entry := api.NewKey(args[1])
	fmt.Fprintf(stdout, "API key (shown once; put it in Studio's ctibridge key variable):\n\n  %s\n\n", key.Reveal())
	fmt.Fprintf(stdout, "Add to the configuration's apiKeys:\n\n  - name: %s\n    sha256: %s\n", entry.Name, entry.SHA256)
	return nil
}
