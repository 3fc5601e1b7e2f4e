package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/cxonepoll"
)

// newPoller builds the CXone poller when cxone.poll is set; nil otherwise.
// Its events go through the same intake as Studio's.
func (b *Bridge) newPoller() (*cxonepoll.Poller, error) {
	x := b.cfg.CXone
	if x.Poll <= 0 {
		return nil, nil
	}
	c, err := cxone.New(cxone.Config{AccessKeyID: x.AccessKeyID, AccessKeySecret: x.AccessKeySecret, TenantID: x.TenantID,
		APIBase: x.APIBase, Logger: b.log.With("component", "cxone"), UserAgent: "ctibridge", Observe: b.ops.metrics.observeCXone})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	id := make([]byte, 4)
	rand.Read(id)
	return cxonepoll.New(cxonepoll.Config{
		API: c, Store: b.DB, Owner: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(id)), Interval: x.Poll,
		Logger: b.log.With("component", "cxone-poll"), Observe: b.ops.metrics.observePoll,
		Accept: func(ctx context.Context, masterID string, ev ctibridge.Event) error {
			_, err := b.Intake.Accept(ctx, masterID, ev)
			return err
		},
	})
}
