package ui

import (
	"context"

	"github.com/mailarc/mailarc/internal/governance"
)

// GovernanceAdapter adapts a governance.Service to Holds and Retention.
type GovernanceAdapter struct {
	S *governance.Service
}

var (
	_ Holds     = GovernanceAdapter{}
	_ Retention = GovernanceAdapter{}
)

// List returns the active holds.
func (g GovernanceAdapter) List(ctx context.Context) ([]Hold, error) {
	hs, err := g.S.Holds(ctx, false)
	if err != nil {
		return nil, err
	}
	out := make([]Hold, 0, len(hs))
	for _, h := range hs {
		hd := fromHold(h)
		// The count of (indexed) messages the hold covers; unknown when
		// the index cannot say.
		if res, err := g.S.HoldMessages(ctx, h.ID, 1, 0); err == nil {
			hd.Matches = int64(res.Total)
		}
		out = append(out, hd)
	}
	return out, nil
}

func fromHold(h *governance.Hold) Hold {
	return Hold{ID: h.ID, Name: h.Name, Query: h.Query, Description: h.Description, CreatedBy: h.Creator,
		Created: h.Created, Matches: -1}
}

// Create places a hold.
func (g GovernanceAdapter) Create(ctx context.Context, user, name, query, description string) (Hold, error) {
	h, err := g.S.CreateHold(ctx, user, governance.HoldSpec{Name: name, Query: query, Description: description})
	if err != nil {
		return Hold{}, err
	}
	return fromHold(h), nil
}

// Release releases a hold.
func (g GovernanceAdapter) Release(ctx context.Context, user, id string) error {
	return g.S.ReleaseHold(ctx, user, id)
}

// Get returns the retention configuration.
func (g GovernanceAdapter) Get(ctx context.Context) (RetentionConfig, error) {
	st, err := g.S.Retention(ctx)
	if err != nil {
		return RetentionConfig{}, err
	}
	c := RetentionConfig{Default: st.Default}
	for _, p := range st.Policies {
		c.Policies = append(c.Policies, RetentionPolicy{Name: p.Name, Query: p.Query, Keep: p.Keep})
	}
	return c, nil
}

// Put replaces the retention configuration.
func (g GovernanceAdapter) Put(ctx context.Context, user string, c RetentionConfig) error {
	r := governance.Retention{Default: c.Default, Policies: []governance.Policy{}}
	for _, p := range c.Policies {
		r.Policies = append(r.Policies, governance.Policy{Name: p.Name, Query: p.Query, Keep: p.Keep})
	}
	_, err := g.S.SetRetention(ctx, user, r)
	return err
}

// Run runs retention (or a dry run).
func (g GovernanceAdapter) Run(ctx context.Context, user string, dryRun bool, confirm int) (purged, held int, err error) {
	if dryRun {
		res, err := g.S.DryRun(ctx, user)
		return int(res.WouldPurge), int(res.Held), err
	}
	res, err := g.S.Run(ctx, user, int64(confirm))
	return int(res.Purged), int(res.Held), err
}
