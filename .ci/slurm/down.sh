#!/usr/bin/env bash
# Stop the daemons .ci/slurm/up.sh started, by their pid files (never by name: nothing else is touched).
set -uo pipefail
S=${1:-/tmp/slurm-ci}
for d in slurmd slurmctld slurmdbd mariadbd munged; do
  f="$S/run/$d.pid"
  [[ -s "$f" ]] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
done
echo "SLURM down ($S)"
