package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailarc/mailarc/internal/catalog"
)

// Report is the outcome of Verify.
type Report struct {
	Entries  int64    `json:"entries"`   // entries read
	HeadSeq  int64    `json:"head_seq"`  // seq recorded in audit_head
	HeadHash string   `json:"head_hash"` // hash recorded in audit_head
	Problems []string `json:"problems"`  // empty when the log is intact
}

// OK reports whether the chain verified without problems.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// maxProblems bounds the problems listed; the count keeps going.
const maxProblems = 100

// Verify re-reads the whole log in seq order and checks every hash, every
// link, the seq sequence and the stored head. It reads in pages, so memory
// does not grow with the log.
func Verify(ctx context.Context, cat *catalog.Catalog) (Report, error) {
	if err := cat.MigrateDialects(ctx, "audit", migrations, pgMigrations); err != nil {
		return Report{}, err
	}
	_, r := cat.DB()
	return verify(ctx, r)
}

func verify(ctx context.Context, db *sql.DB) (Report, error) {
	rep := Report{Problems: []string{}}
	more := 0
	problem := func(format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		} else {
			more++
		}
	}
	var head string
	err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key=?`, headKey).Scan(&head)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return rep, fmt.Errorf("audit verify: read head: %w", err)
	}
	if head != "" {
		s, h, ok := strings.Cut(head, ":")
		n, perr := strconv.ParseInt(s, 10, 64)
		if !ok || perr != nil {
			problem("stored head %q is malformed", head)
		} else {
			rep.HeadSeq, rep.HeadHash = n, h
		}
	}
	var last int64
	prev := GenesisHash
	for {
		rows, err := db.QueryContext(ctx, `SELECT seq, time, "user", action, detail, prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT 2000`, last)
		if err != nil {
			return rep, fmt.Errorf("audit verify: %w", err)
		}
		n := 0
		for rows.Next() {
			e, err := scan(rows)
			if err != nil {
				rows.Close()
				return rep, err
			}
			n++
			rep.Entries++
			if e.Seq != last+1 {
				problem("entries %d to %d are missing (deleted)", last+1, e.Seq-1)
			}
			if e.PrevHash != prev {
				problem("entry %d: prev_hash does not match the hash of the entry before it", e.Seq)
			}
			if Hash(e.Seq, e.Time, e.User, e.Action, string(e.Detail), e.PrevHash) != e.Hash {
				problem("entry %d: content does not match its hash (edited)", e.Seq)
			}
			last, prev = e.Seq, e.Hash
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return rep, fmt.Errorf("audit verify: %w", err)
		}
		if n == 0 {
			break
		}
	}
	switch {
	case head == "" && last > 0:
		problem("the stored head is missing but the log has %d entries", last)
	case rep.HeadSeq > last:
		problem("log truncated: the head records entry %d but the last entry is %d", rep.HeadSeq, last)
	case rep.HeadSeq < last:
		problem("entries after the recorded head %d were appended outside mailarc (last entry %d)", rep.HeadSeq, last)
	case head != "" && rep.HeadHash != prev:
		problem("the last entry %d does not match the recorded head hash", last)
	}
	if more > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("... and %d more problems", more))
	}
	return rep, nil
}
