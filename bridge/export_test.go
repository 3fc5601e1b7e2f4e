package bridge

import (
	"time"

	"github.com/ctibridge/ctibridge/loginlimit"
)

// SetLoginClock gives the login limits a clock, so a test can show a limit
// lifting without waiting for it. Call it before Serve.
func SetLoginClock(b *Bridge, now func() time.Time) {
	b.logins.lim = loginlimit.New(loginlimit.Options{Now: now})
}
