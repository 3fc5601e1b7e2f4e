package lifecycle

import (
	"context"
	"errors"
	"net/http"

	"github.com/ctibridge/ctibridge/servicenow"
)

// snowClient adapts the ServiceNow client to what the reconciler needs.
type snowClient struct{ c *servicenow.Client }

func (s snowClient) insert(ctx context.Context, table, sysID string, fields map[string]string) (inserted, error) {
	rec, err := s.c.Insert(ctx, table, fields, servicenow.InsertOptions{SysID: sysID})
	switch {
	case errors.Is(err, servicenow.ErrDuplicateSysID):
		return inserted{}, errExists
	case errors.Is(err, servicenow.ErrSysIDIgnored):
		// The instance chose its own sys_id: keep using the real one.
		return inserted{sysID: rec.SysID(), number: rec.Get("number"), sysIDIgnored: true}, nil
	case err != nil:
		return inserted{}, err
	}
	return inserted{sysID: rec.SysID(), number: rec.Get("number")}, nil
}

func (s snowClient) patch(ctx context.Context, table, sysID string, fields map[string]string) error {
	_, err := s.c.Patch(ctx, table, sysID, fields)
	return err
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
	out := make(map[string]string, len(rec))
	for k := range rec {
		out[k] = rec.Get(k)
	}
	return out, nil
}

// classify turns an error into what the retry policy and the error log need.
// Errors that are not ServiceNow's (store, context) are transient.
func classify(err error) failure {
	f := failure{message: err.Error()}
	var se *servicenow.Error
	if errors.As(err, &se) {
		f.status, f.message, f.detail = se.Status, se.Message, se.Detail
		f.permanent = !se.Temporary()
		f.retryAfter = se.RetryAfter
		if f.message == "" {
			f.message = se.Error()
		}
	}
	return f
}
