#!/usr/bin/env bash
# benchmarks/dist/scaling.sh — CPU data-parallel scaling of redi's trainer, 1 rank -> 2 ranks,
# one OpenMP thread per rank, the same global batch (docs/distributed.md):
#   bash benchmarks/dist/scaling.sh [BUILD_DIR] [--batch B] [--steps N] [--width C] [--depth D]
# Prints both runs' JSON lines (bench_dist_train) and the speed-up = images/s(2 ranks) /
# images/s(1 rank); 2.0 is perfect scaling. Needs 2 free cores for a meaningful figure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build-tests}"
[[ $# -gt 0 ]] && shift
bin="$build/benchmarks/dist/bench_dist_train"
[[ -x "$bin" ]] || { echo "scaling.sh: $bin not built (cmake --build $build --target bench_dist_train; needs MPI)" >&2; exit 1; }
flags=()
if mpirun --version 2>&1 | grep -q "Open MPI"; then flags=(--oversubscribe --allow-run-as-root --bind-to none); fi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
one=$(mpirun "${flags[@]}" -np 1 "$bin" "$@")
two=$(mpirun "${flags[@]}" -np 2 "$bin" "$@")
echo "$one"
echo "$two"
ips() { sed -E 's/.*"img_per_s": ([0-9.]+).*/\1/' <<<"$1"; }
awk -v a="$(ips "$one")" -v b="$(ips "$two")" \
  'BEGIN { printf "speed-up 1 -> 2 ranks (one thread each): %.2fx (%.1f -> %.1f img/s)\n", b / a, a, b }'
