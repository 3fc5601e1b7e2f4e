package lifecycle

import (
	"context"
	"errors"
	"time"
)

// tableAPI is the part of ServiceNow the reconciler writes to, in its own
// terms. snowClient (servicenow_adapter.go) implements it over the client.
type tableAPI interface {
	// insert creates a record with a chosen sys_id; mayExist says an
	// earlier attempt whose outcome is unknown may have created it.
	insert(ctx context.Context, table, sysID string, fields map[string]string, mayExist bool) (inserted, error)
	// patch updates a record and returns it as stored. With once, an
	// attempt of unknown outcome is not repeated and the error satisfies
	// mayHaveApplied: used for writes that append to a journal.
	patch(ctx context.Context, table, sysID string, fields map[string]string, once bool) (map[string]string, error)
	get(ctx context.Context, table, sysID string) (map[string]string, error)
}

type inserted struct {
	sysID, number string
	sysIDIgnored  bool              // the instance chose its own sys_id
	modCount      string            // sys_mod_count of the record as created
	writer        string            // sys_created_by: the integration user as the instance knows it
	unconfirmed   bool              // refused after an attempt of unknown outcome and not readable: taken as created
	record        map[string]string // the record as stored, from the reply
}

var (
	// errExists: a record with the chosen sys_id exists already.
	errExists = errors.New("record exists")
	// errUnreadable: the integration user may not read the record back.
	errUnreadable = errors.New("record not readable")
)

// failure is an error as the retry policy and the error log see it.
type failure struct {
	status     int
	message    string
	detail     string
	permanent  bool
	retryAfter time.Duration
}
