#!/usr/bin/env bash
# tests/fuzz/run.sh — builds redi's libFuzzer targets (clang, ASan + UBSan) and runs each for
# SECONDS, one after the other, one process each (nice), then prints executions and CPU
# time per target. A crash, sanitizer report, timeout, leak or non-redi exception stops that
# target; its input is kept as <build>/artifacts/<target>-crash-* (make it a regression file
# under tests/data/fuzz/, see docs/security.md). Exit status 1 when any target found something.
#
#   bash tests/fuzz/run.sh 600                  # 10 minutes per target, every target
#   bash tests/fuzz/run.sh 60 torch npz         # some targets
#
# Environment: REDI_FUZZ_BUILD_DIR (default build-fuzz), CXX (default clang++, else clang++-14),
# REDI_FUZZ_JOBS (build parallelism, default 2), REDI_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
secs="${1:?usage: run.sh SECONDS [target...]}"
shift
build="${REDI_FUZZ_BUILD_DIR:-build-fuzz}"
cxx="${CXX:-}"
if [[ -z "$cxx" ]]; then
  if command -v clang++ >/dev/null 2>&1; then cxx=clang++; else cxx=clang++-14; fi
fi
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
cmake --build "$build" -j "${REDI_FUZZ_JOBS:-2}"
read -r -a all <"$build/targets.txt"
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

mkdir -p "$build/artifacts" "$build/logs"
summary="$build/summary.txt"
printf '%-12s %14s %10s %10s  %s\n' target executions cpu_s exec_per_s result | tee "$summary"
failed=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  log="$build/logs/$t.log"
  TIMEFORMAT='%U %S'
  set +e
  { time nice -n 10 "$build/fuzz_$t" "$corpus" "$build/seeds/$t" -max_total_time="$secs" \
      -timeout=20 -rss_limit_mb=2560 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t-" ${REDI_FUZZ_ARGS:-} >"$log" 2>&1 ; } 2>"$build/logs/$t.time"
  rc=$?
  set -e
  read -r usr sys <"$build/logs/$t.time"
  cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN{printf "%.1f", u + s}')
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  rate=$(awk -v e="${execs:-0}" -v c="$cpu" 'BEGIN{printf "%.0f", (c > 0) ? e / c : 0}')
  if [[ $rc -eq 0 ]]; then result=ok; else result="FOUND (rc $rc, see $log)"; failed=1; fi
  printf '%-12s %14s %10s %10s  %s\n' "$t" "${execs:-0}" "$cpu" "$rate" "$result" | tee -a "$summary"
done
exit $failed
