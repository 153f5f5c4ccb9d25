#!/bin/bash
# A/B of SMTP ingest between two builds (docs/benchmarks.md): starts
# `BIN serve` on a fresh data directory, sends Postfix smtp-source's 20
# connections x N x 100 kB, and prints msgs/s and the serve process's CPU.
# Alternate the builds: for i in 1 2 3; do scripts/smtp-ab.sh old-bin old; scripts/smtp-ab.sh bin/mailarc new; done
# usage: smtp-ab.sh BIN TAG [messages]
BIN=$1; TAG=$2; M=${3:-5000}
D=$(mktemp -d /tmp/smtpab.XXXX)
HP=$((20000 + RANDOM % 10000)); SP=$((30000 + RANDOM % 10000))
MAILARC_ADMIN_PASSWORD=benchbench MAILARC_HTTP_LISTEN=127.0.0.1:$HP MAILARC_SMTP_LISTEN=127.0.0.1:$SP $BIN serve --data $D/data > $D/log 2>&1 &
PID=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$HP/readyz >/dev/null && break; sleep 0.1; done
T0=$(date +%s.%N)
smtp-source -l 102400 -m $M -s 20 -f b@example.com -t j@example.com 127.0.0.1:$SP || echo "smtp-source failed"
T1=$(date +%s.%N)
CPU=$(awk '{print ($14+$15)/100}' /proc/$PID/stat)
kill $PID; wait $PID 2>/dev/null
echo "$TAG $(echo "$M / ($T1 - $T0)" | bc -l | xargs printf %.0f) msgs/s cpu=${CPU}s per-msg-ms=$(echo "$CPU*1000/$M" | bc -l | xargs printf %.2f) load=$(cut -d' ' -f1 /proc/loadavg)"
rm -rf $D
