package bridge

import (
	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/agentmap"
	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/servicenow"
)

type cacheStat struct{ Hits, Misses int64 }

func (b *Bridge) newAgentFinder(sn *servicenow.Client) (*agentmap.Finder, error) {
	cfg := b.cfg
	o := agentmap.Options{Strategies: cfg.Agents.Strategies, TTL: cfg.Agents.CacheTTL, MapFile: cfg.Agents.MapFile}
	if x := cfg.CXone; x.AccessKeyID != "" {
		c, err := cxone.New(cxone.Config{AccessKeyID: x.AccessKeyID, AccessKeySecret: x.AccessKeySecret, TenantID: x.TenantID,
			APIBase: x.APIBase, Logger: b.log.With("component", "cxone"), UserAgent: "ctibridge", Observe: b.ops.metrics.observeCXone})
		if err != nil {
			return nil, err
		}
		o.Directory = c
	}
	return agentmap.New(sn, o)
}

func newCallerFinder(cfg *config.Config, sn *servicenow.Client, w ctibridge.Warner) ctibridge.CallerFinder {
	if cfg.Callers.Disabled {
		return nil
	}
	c := cfg.Callers
	var sources []callerid.Source
	for _, s := range c.Sources {
		sources = append(sources, callerid.Source{Table: s.Table, Fields: s.Fields})
	}
	return callerid.NewFinder(sn, callerid.FinderOptions{
		Region: c.Region, TTL: c.CacheTTL, UnknownTTL: c.UnknownTTL, Policy: c.Policy, Related: c.Related, Sources: sources, Warner: w,
	})
}

func (b *Bridge) cacheStats() map[string]cacheStat {
	out := map[string]cacheStat{}
	if f, ok := b.Rec.Agents().(*agentmap.Finder); ok {
		h, m := f.Stats()
		out["agents"] = cacheStat{h, m}
	}
	if f, ok := b.Rec.Callers().(*callerid.Finder); ok {
		h, m := f.Stats()
		out["callers"] = cacheStat{h, m}
	}
	return out
}
