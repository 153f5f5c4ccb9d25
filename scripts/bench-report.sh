#!/usr/bin/env bash
# Runs every mailarc-bench measurement of issue #10/#11 in one go and writes
# one Markdown report (default bench-report.md), the raw material of
# docs/benchmarks.md. Needs: postfix (smtp-source), notmuch, postgresql-15,
# versitygw (see .ci/run), ../shared/corpus/real, and as much free disk as
# 2x the amplified corpus (1M messages: ~27 GB). Takes ~20 min at N=100000
# and ~1.5 h with N=100000,1000000 on 2 cores.
#
#   scripts/bench-report.sh [N-list] [output]      e.g. scripts/bench-report.sh 100000,1000000
set -euo pipefail
N=${1:-100000}
OUT=${2:-bench-report.md}
CORPUS=${CORPUS:-../shared/corpus/real}
WORK=${WORK:-${TMPDIR:-/tmp}/mailarc-bench-scale}
make build
go build -tags sqlite_fts5 -o bin/mailarc-bench ./cmd/mailarc-bench
B="bin/mailarc-bench -bin bin/mailarc -corpus $CORPUS"
{
  echo "# mailarc benchmark report ($(date -u +%FT%TZ), $(git describe --always --dirty))"
  echo
  echo "## Scale: import, index, disk, search (cold and warm), RSS, notmuch"
  $B scale -n "$N" -work "$WORK" -keep
  echo
  echo "## SMTP ingest (Postfix smtp-source, 20 connections, 10,000 x 100 kB; real corpus)"
  $B smtp
  echo
  echo "## Ingest floor: the same loads against servers that only receive (and fsync)"
  $B floor
  echo
  echo "## Mirroring: backlog drain and steady lag"
  $B mirror
  echo
  echo "## Embedded default vs S3 + PostgreSQL"
  $B backends
} > "$OUT"
echo "wrote $OUT"
