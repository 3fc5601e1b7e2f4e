package bridge_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminFilterRefusesWhatItCannotApply: an error-log filter value the
// admin API cannot apply exactly is refused with the parameter named, and a
// retry with it retries nothing (status=0 used to mean any status).
func TestAdminFilterRefusesWhatItCannotApply(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct{ query, named string }{
		{"status=0", "status"}, {"status=abc", "status"}, {"status=1000", "status"},
		{"since=-1h", "since"}, {"since=0s", "since"}, {"since=soon", "since"},
		{"limit=0", "limit"}, {"open=maybe", "open"},
	} {
		for _, method := range []string{"GET", "POST"} {
			path := "/admin/errors?"
			if method == "POST" {
				path = "/admin/errors/retry?"
			}
			req, _ := http.NewRequest(method, e.url+path+tc.query, nil)
			req.SetBasicAuth("admin", "console-pass")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body strings.Builder
			resp.Write(&body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), `"error":"`+tc.named+`: want`) {
				t.Errorf("%s %s%s: %d, want 400 naming %s:\n%s", method, path, tc.query, resp.StatusCode, tc.named, body.String())
			}
		}
	}
}
