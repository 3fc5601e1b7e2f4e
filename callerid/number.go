// Package callerid identifies callers from the number CXone reports (the
// ANI): it parses it with libphonenumber's rules, searches ServiceNow for the
// spellings a stored number is likely to have, and finds the caller's open
// incidents and cases.
package callerid

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Number is a parsed ANI.
type Number struct {
	Raw      string // as received
	E164     string // +18013203420; "" when the ANI is not a usable number
	Ext      string // extension, if the ANI carried one
	Region   string // the number's region (US, GB, ...)
	Withheld bool   // anonymous, restricted, empty or not a phone number
	Reason   string // why it is withheld, for notes and logs
}

// withheldWords are what carriers and PBXs put in place of a number.
var withheldWords = map[string]bool{
	"anonymous": true, "restricted": true, "private": true, "unknown": true, "unavailable": true,
	"withheld": true, "blocked": true, "none": true, "null": true, "undefined": true, "0": true,
	"out of area": true, "not available": true, "p": true, "o": true, "a": true,
}

// Parse reads an ANI. region is the default region for numbers dialled
// without a country code (ISO 3166 code, e.g. "US").
func Parse(ani, region string) Number {
	n := Number{Raw: ani}
	s := strings.TrimSpace(ani)
	low := strings.ToLower(s)
	for _, p := range []string{"tel:", "sip:", "sips:"} {
		if strings.HasPrefix(low, p) {
			s = s[len(p):]
			if at := strings.IndexAny(s, "@;"); at >= 0 {
				s = s[:at]
			}
			low = strings.ToLower(s)
			break
		}
	}
	switch {
	case s == "":
		n.Withheld, n.Reason = true, "no number"
		return n
	case withheldWords[low]:
		n.Withheld, n.Reason = true, "number withheld ("+s+")"
		return n
	case len(s) > 64:
		n.Withheld, n.Reason = true, "not a phone number (too long)"
		return n
	}
	digits := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits < 5 {
		n.Withheld, n.Reason = true, fmt.Sprintf("not a phone number (%q)", s)
		return n
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		n.Withheld, n.Reason = true, fmt.Sprintf("not a phone number (%q)", s)
		return n
	}
	n.E164 = phonenumbers.Format(num, phonenumbers.E164)
	n.Ext = num.GetExtension()
	n.Region = phonenumbers.GetRegionCodeForNumber(num)
	return n
}

// Spellings lists the ways a ServiceNow record is likely to hold the number:
// E.164, with and without "+", international dialling prefixes, the
// national and international formats with spaces, dashes, dots or
// parentheses, and the usual North American shapes. Stored numbers outside
// this list (extra words, extensions, unusual grouping) are not found.
func Spellings(n Number) []string {
	if n.E164 == "" {
		return nil
	}
	num, err := phonenumbers.Parse(n.E164, "")
	if err != nil {
		return []string{n.E164}
	}
	cc := strconv.Itoa(int(num.GetCountryCode()))
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	seen := map[string]bool{}
	var out []string
	add := func(ss ...string) {
		for _, s := range ss {
			if s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	// separators turns a grouped spelling into its space, dash and dot forms.
	separators := func(s string) []string {
		fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' || r == '.' })
		return []string{strings.Join(fields, " "), strings.Join(fields, "-"), strings.Join(fields, "."), s}
	}
	add("+"+cc+nsn, cc+nsn, "00"+cc+nsn, "011"+cc+nsn)
	intl := phonenumbers.Format(num, phonenumbers.INTERNATIONAL) // +44 20 7946 0958
	add(separators(intl)...)
	add(separators(strings.TrimPrefix(intl, "+"))...)
	if cc != "1" {
		add(separators("00" + strings.TrimPrefix(intl, "+"))...) // 0044 20 7946 0958
	}
	nat := phonenumbers.Format(num, phonenumbers.NATIONAL) // (801) 320-3420, 020 7946 0958
	add(nat, digitsOnly(nat), nsn)
	if !strings.Contains(nat, "(") {
		add(separators(nat)...)
	}
	if ndd := phonenumbers.GetNddPrefixForRegion(n.Region, true); ndd == "0" {
		// "+44 (0)20 7946 0958", common on British and German records.
		rest := strings.TrimPrefix(intl, "+"+cc+" ")
		add("+"+cc+" ("+ndd+")"+rest, "+"+cc+" ("+ndd+") "+rest)
	}
	if cc == "1" && len(nsn) == 10 {
		a, b, c := nsn[:3], nsn[3:6], nsn[6:]
		for _, f := range []string{
			"%s-%s-%s", "%s.%s.%s", "%s %s %s", "(%s) %s-%s", "(%s)%s-%s", "(%s) %s %s", "(%s) %s.%s",
			"1-%s-%s-%s", "1 %s %s %s", "1.%s.%s.%s", "1 (%s) %s-%s", "1(%s)%s-%s",
			"+1 %s %s %s", "+1-%s-%s-%s", "+1.%s.%s.%s", "+1 %s-%s-%s", "+1 (%s) %s-%s", "+1(%s)%s-%s", "+1 (%s) %s %s",
		} {
			add(fmt.Sprintf(f, a, b, c))
		}
	}
	return out
}

func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Same reports whether a stored value is the number n, read in the
// configured region or in the number's own region.
func Same(stored string, n Number, region string) bool {
	if n.E164 == "" {
		return false
	}
	for _, r := range []string{region, n.Region} {
		if p := Parse(stored, r); p.E164 == n.E164 {
			return true
		}
	}
	// 00 and 011 are international prefixes in most of the world and in
	// North America: a stored "0044…" or "01144…" is "+44…" wherever it was
	// typed.
	d := digitsOnly(stored)
	for _, idd := range []string{"00", "011"} {
		if rest, ok := strings.CutPrefix(d, idd); ok && Parse("+"+rest, region).E164 == n.E164 {
			return true
		}
	}
	return false
}

// CheckRegion checks the configured region (callers.region), a region code
// national numbers can be read in (US, GB, DE, ...).
func CheckRegion(region string) error {
	if phonenumbers.GetCountryCodeForRegion(strings.ToUpper(region)) == 0 {
		return fmt.Errorf("config: callers.region %q: want a region code like US, GB or DE", region)
	}
	return nil
}
