// The part of ServiceNow the reconciler writes to, over the client.

package lifecycle

import (
	"context"
	"errors"
	"net/http"

	"github.com/ctibridge/ctibridge/servicenow"
)

// snowClient adapts the ServiceNow client to what the reconciler needs.
type snowClient struct{ c *servicenow.Client }

// insert is insertAll for one record.
func insert(ctx context.Context, sn tableAPI, table, sysID string, fields map[string]string, mayExist bool) (inserted, error) {
	res, errs := sn.insertAll(ctx, table, []newRow{{sysID: sysID, fields: fields, mayExist: mayExist}})
	return res[0], errs[0]
}

func (s snowClient) insertAll(ctx context.Context, table string, rows []newRow) ([]inserted, []error) {
	reqs := make([]*servicenow.Request, len(rows))
	for i, r := range rows {
		reqs[i] = servicenow.InsertRequest(table, r.fields, servicenow.InsertOptions{SysID: r.sysID, MayExist: r.mayExist})
	}
	s.c.Batch(ctx, reqs...)
	res, errs := make([]inserted, len(rows)), make([]error, len(rows))
	for i, r := range reqs {
		res[i], errs[i] = insertResult(r.Record())
	}
	return res, errs
}

// insertResult reads an insert's outcome in the reconciler's terms.
func insertResult(rec servicenow.Record, err error) (inserted, error) {
	switch {
	case errors.Is(err, servicenow.ErrUnconfirmed):
		return inserted{sysID: rec.SysID(), unconfirmed: true}, nil
	case errors.Is(err, servicenow.ErrDuplicateSysID):
		return inserted{}, errExists
	case errors.Is(err, servicenow.ErrSysIDIgnored):
		// The instance chose its own sys_id: keep using the real one.
		in := created(rec)
		in.sysIDIgnored = true
		return in, nil
	case err != nil:
		return inserted{}, err
	}
	return created(rec), nil
}

func created(rec servicenow.Record) inserted {
	return inserted{sysID: rec.SysID(), number: rec.Get("number"), modCount: rec.Get("sys_mod_count"), writer: rec.Get("sys_created_by"), record: flat(rec)}
}

func (s snowClient) patch(ctx context.Context, table, sysID string, fields map[string]string, once bool) (map[string]string, error) {
	patch := s.c.Patch
	if once {
		patch = s.c.PatchOnce
	}
	rec, err := patch(ctx, table, sysID, fields)
	if err != nil {
		return nil, err
	}
	return flat(rec), nil
}

// mayHaveApplied reports whether a failed write may have been applied.
func mayHaveApplied(err error) bool {
	var se *servicenow.Error
	return errors.As(err, &se) && se.MayHaveApplied()
}

func (s snowClient) get(ctx context.Context, table, sysID string) (map[string]string, error) {
	rec, err := s.c.Get(ctx, table, sysID)
	var se *servicenow.Error
	if errors.As(err, &se) && (se.Status == http.StatusForbidden || se.Status == http.StatusNotFound) {
		return nil, errUnreadable
	}
	if err != nil {
		return nil, err
	}
	return flat(rec), nil
}

// flat turns a record into plain values (a reference's sys_id).
func flat(rec servicenow.Record) map[string]string {
	out := make(map[string]string, len(rec))
	for k := range rec {
		out[k] = rec.Get(k)
	}
	return out
}

// tableAPI is the part of ServiceNow the reconciler writes to, in its own
// terms. snowClient (servicenow_adapter.go) implements it over the client.
type tableAPI interface {
	// insertAll creates records of one table, each with a chosen sys_id,
	// in one round trip where the instance serves batches. Each result is
	// what creating the record alone would have given.
	insertAll(ctx context.Context, table string, rows []newRow) ([]inserted, []error)
	// patch updates a record and returns it as stored. With once, an
	// attempt of unknown outcome is not repeated and the error satisfies
	// mayHaveApplied: used for writes that append to a journal.
	patch(ctx context.Context, table, sysID string, fields map[string]string, once bool) (map[string]string, error)
	get(ctx context.Context, table, sysID string) (map[string]string, error)
}

// newRow is a record to create with a chosen sys_id; mayExist says an
// earlier attempt whose outcome is unknown may have created it.
type newRow struct {
	sysID    string
	fields   map[string]string
	mayExist bool
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
