package archive

import (
	"context"
	"fmt"
)

// Problem is one inconsistency found by Verify.
type Problem struct {
	ID     string
	Reason string
}

// VerifyReport summarises a Verify run.
type VerifyReport struct {
	Blobs    int64 // blobs re-hashed
	Messages int64 // catalog rows checked
	Problems []Problem
	// Orphans are blobs no catalog entry references: left by a crash
	// between the store sync and the catalog commit of an ingest that was
	// therefore never acknowledged. Harmless; adopted if the same message
	// arrives again. Never deleted automatically (a catalog restored from an
	// older backup would make live mail look orphaned).
	Orphans []string
}

// Verify re-hashes every blob against its id and checks that every catalog
// message has its blob and every blob is referenced by the catalog (as a
// message or a journal report). Progress, if non-nil, is called per blob.
func (a *Archive) Verify(ctx context.Context, progress func(n int64)) (VerifyReport, error) {
	var rep VerifyReport
	blobs := map[string]bool{}
	err := a.st.Verify(ctx, func(id string, err error) error {
		rep.Blobs++
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{ID: id, Reason: err.Error()})
		} else {
			blobs[id] = true
		}
		if progress != nil {
			progress(rep.Blobs)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("archive: verify store: %w", err)
	}
	bad := map[string]bool{}
	for _, p := range rep.Problems {
		bad[p.ID] = true
	}
	referenced := map[string]bool{}
	err = a.cat.Walk(ctx, func(id string, size int64) error {
		rep.Messages++
		referenced[id] = true
		if !blobs[id] && !bad[id] {
			rep.Problems = append(rep.Problems, Problem{ID: id, Reason: "in the catalog but its blob is missing from the store"})
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("archive: verify catalog: %w", err)
	}
	reports, err := a.cat.ReportIDs(ctx)
	if err != nil {
		return rep, err
	}
	for _, id := range reports {
		referenced[id] = true
	}
	for id := range blobs {
		if !referenced[id] {
			rep.Orphans = append(rep.Orphans, id)
		}
	}
	return rep, nil
}
