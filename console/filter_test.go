package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/lifecycle"
)

// fakeSource records the filters the console asks for.
type fakeSource struct {
	errors  []lifecycle.ErrorFilter
	retries []lifecycle.ErrorFilter
}

func (s *fakeSource) Calls(context.Context, lifecycle.CallFilter) ([]lifecycle.Status, error) {
	return nil, nil
}
func (s *fakeSource) Errors(_ context.Context, f lifecycle.ErrorFilter) ([]lifecycle.ErrorEntry, error) {
	s.errors = append(s.errors, f)
	return nil, nil
}
func (s *fakeSource) RetryError(context.Context, int64) (int, error) { return 0, nil }
func (s *fakeSource) RetryMatching(_ context.Context, f lifecycle.ErrorFilter) (int, error) {
	s.retries = append(s.retries, f)
	return 7, nil
}
func (s *fakeSource) Chart(time.Time, int) []Point { return nil }
func (s *fakeSource) Budget() Budget               { return Budget{} }
func (s *fakeSource) Queue(context.Context) (lifecycle.QueueCounts, error) {
	return lifecycle.QueueCounts{}, nil
}
func (s *fakeSource) RecordURL(sysID string) string { return "https://example.test/" + sysID }

var testNow = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// loggedIn is a console with one session, and a function to send requests
// in it (POSTs carry the CSRF token).
func loggedIn(t testing.TB) (*fakeSource, func(method, path string, form url.Values) *httptest.ResponseRecorder) {
	src := &fakeSource{}
	c := New(src, func(*http.Request, string, string) (bool, time.Duration) { return false, 0 })
	c.now = func() time.Time { return testNow }
	c.sessions["s1"] = session{user: "admin", csrf: "tok", expires: testNow.Add(time.Hour)}
	return src, func(method, path string, form url.Values) *httptest.ResponseRecorder {
		var body io.Reader
		if form != nil {
			form.Set("csrf", "tok")
			body = strings.NewReader(form.Encode())
		}
		r := httptest.NewRequest(method, path, body)
		if form != nil {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		r.AddCookie(&http.Cookie{Name: cookieName, Value: "s1"})
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		return w
	}
}

// TestFilterMistakesAreNamedNotIgnored: a filter value the console does not
// understand is reported on the page, and "Retry all matching" with it
// retries nothing (ignoring it would retry every open error).
func TestFilterMistakesAreNamedNotIgnored(t *testing.T) {
	src, do := loggedIn(t)
	for _, tc := range []struct{ field, value, named string }{
		{"since", "2 hours", "Seen within"},
		{"since", "-1h", "Seen within"},
		{"status", "50x", "HTTP status"},
		{"status", "0", "HTTP status"},
	} {
		w := do("POST", "/console/errors/retry", url.Values{tc.field: {tc.value}})
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.named) {
			t.Errorf("retry with %s=%q: %d %q, want 400 naming %q", tc.field, tc.value, w.Code, w.Body.String(), tc.named)
		}
		w = do("GET", "/console/errors?"+url.Values{tc.field: {tc.value}}.Encode(), nil)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `id="filter-error"`) ||
			!strings.Contains(w.Body.String(), tc.named) || strings.Contains(w.Body.String(), `id="retry-all"`) {
			t.Errorf("errors page with %s=%q: %d, want 400 naming %q and no retry button:\n%s", tc.field, tc.value, w.Code, tc.named, w.Body.String())
		}
	}
	if len(src.retries) != 0 || len(src.errors) != 0 {
		t.Errorf("bad filters reached the error log: %d retries, %d queries", len(src.retries), len(src.errors))
	}
	w := do("POST", "/console/errors/retry", url.Values{"since": {" 90m"}, "status": {"403"}, "operation": {"create interaction"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/errors?retried=7" {
		t.Fatalf("good filter: %d %s", w.Code, w.Header().Get("Location"))
	}
	want := lifecycle.ErrorFilter{OpenOnly: true, Operation: "create interaction", Status: 403, Since: testNow.Add(-90 * time.Minute), Limit: 200}
	if len(src.retries) != 1 || src.retries[0] != want {
		t.Errorf("retried %+v, want %+v", src.retries, want)
	}
}

// FuzzErrorFilter: whatever an operator (or a forged link) puts in the
// error-log filter, the page answers 200 or 400, a refusal names the field,
// and nothing given is dropped from the filter, on the page or in the
// "Retry all matching" form that carries it.
func FuzzErrorFilter(f *testing.F) {
	f.Add("create interaction", "403", "1h", "error", "")
	f.Add("", "", "", "", "1")
	f.Add("map agent", "0", "-5m", "warning", "yes")
	f.Add("<script>", "4e2", "1.5h", "\"", "")
	f.Add("x", "+403", "9223372036854775807ns", "", "")
	f.Add("", " 599 ", "1h30m ", "", "")
	src, do := loggedIn(f)
	f.Fuzz(func(t *testing.T, operation, status, since, severity, open string) {
		in := url.Values{"operation": {operation}, "status": {status}, "since": {since}, "severity": {severity}, "open": {open}}
		r := httptest.NewRequest("GET", "/console/errors?"+in.Encode(), nil)
		flt, form, err := errorFilter(r, testNow)
		for k, v := range form {
			if in.Get(k) != v {
				t.Fatalf("%s=%q is carried as %q", k, in.Get(k), v)
			}
		}
		if err != nil {
			if fe, ok := err.(*filterError); !ok || fe.field == "" || fe.want == "" {
				t.Fatalf("%v does not name the field", err)
			}
		} else {
			wantOpen := true
			if v := strings.TrimSpace(open); v != "" {
				wantOpen, _ = strconv.ParseBool(v)
			}
			if flt.Operation != strings.TrimSpace(operation) || flt.Severity != strings.TrimSpace(severity) || flt.OpenOnly != wantOpen || flt.Limit != 200 {
				t.Fatalf("filter %+v from %v", flt, in)
			}
			if strings.TrimSpace(status) != "" {
				n, err := strconv.Atoi(strings.TrimSpace(status))
				if err != nil || flt.Status != n || n < 100 || n > 599 {
					t.Fatalf("status %q became %d", status, flt.Status)
				}
			} else if flt.Status != 0 {
				t.Fatalf("no status became %d", flt.Status)
			}
			if (strings.TrimSpace(since) != "") != !flt.Since.IsZero() || flt.Since.After(testNow) {
				t.Fatalf("since %q became %v", since, flt.Since)
			}
		}
		src.errors = src.errors[:0]
		w := do("GET", "/console/errors?"+in.Encode(), nil)
		if (err == nil && w.Code != http.StatusOK) || (err != nil && w.Code != http.StatusBadRequest) {
			t.Fatalf("errors page for %v: %d (filter error %v)", in, w.Code, err)
		}
	})
}
