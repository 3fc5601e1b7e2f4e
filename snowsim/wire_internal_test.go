package snowsim

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// linkHeaderByValues is the Link header as first written, with a fresh
// url.Values per link: the reference linkHeader must agree with.
func linkHeaderByValues(base string, q url.Values, limit, offset, total int) string {
	link := func(off int, rel string) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("sysparm_limit", strconv.Itoa(limit))
		v.Set("sysparm_offset", strconv.Itoa(off))
		return fmt.Sprintf("<%s?%s>;rel=%q", base, v.Encode(), rel)
	}
	last := 0
	if total > 0 {
		last = (total - 1) / limit * limit
	}
	parts := []string{link(0, "first")}
	if offset > 0 {
		parts = append(parts, link(max(0, offset-limit), "prev"))
	}
	if offset+limit < total {
		parts = append(parts, link(offset+limit, "next"))
	}
	parts = append(parts, link(last, "last"))
	return strings.Join(parts, ",")
}

func TestLinkHeaderAgreesWithURLValues(t *testing.T) {
	queries := []string{"", "sysparm_limit=5", "sysparm_offset=3", "sysparm_limit=5&sysparm_offset=10", "a=1", "z=1", "sysparm_no_count=true",
		"sysparm_query=active%3Dtrue%5EphoneIN%2B1+801,(801)%20555&sysparm_fields=sys_id,name&sysparm_limit=10&sysparm_exclude_reference_link=true",
		"sysparm_limit=1&sysparm_limit=2&sysparm_offset=x&sysparm_offset=y", "sysparm_limit", "a=&b=%26%3D%3F&%C3%A9=%E2%80%A8&sysparm_m=1&sysparm_z=2",
		"sysparm_lim=1&sysparm_limitx=2&sysparm_offse=3&sysparm_offsetz=4&sysparm_o=5", "x=1&x=2&x=3", "%00=%01&A=B&_=~"}
	for _, raw := range queries {
		q, _ := url.ParseQuery(raw)
		for _, c := range [][3]int{{10, 0, 0}, {10, 0, 5}, {10, 0, 25}, {10, 10, 25}, {10, 20, 25}, {10, 30, 25}, {1, 7, 9}, {3, 2, 100}, {10000, 0, 3}} {
			got := linkHeader("http://sim.example/api/now/table/sys_user", q, c[0], c[1], c[2])
			want := linkHeaderByValues("http://sim.example/api/now/table/sys_user", q, c[0], c[1], c[2])
			if got != want {
				t.Errorf("query %q, limit/offset/total %v:\n got %s\nwant %s", raw, c, got, want)
			}
		}
	}
}
