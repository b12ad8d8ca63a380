#!/usr/bin/env bash
# tests/cuda/device_check.sh — build redi's CUDA targets, run the CUDA tests and benchmarks on
# a GPU machine, and print a summary. Sized for < 8 minutes on one H100 with 16 cores.
#
#   tests/cuda/device_check.sh                 # from the repository root (or anywhere)
#   BUILD=/tmp/b ARCH=90 JOBS=16 tests/cuda/device_check.sh
#   EXTRA_TARGETS="bench_train_step" EXTRA_RUN="build-device/benchmarks/bench_train_step --x" ...
#
# Env: BUILD (build dir, default <repo>/build-device), ARCH (CMAKE_CUDA_ARCHITECTURES; default
# from nvidia-smi's compute capability, else 90), JOBS (default nproc), OUT (a folder to copy
# logs and benchmark JSON into, e.g. $OUT on the device machine), BENCH=0 skips benchmarks,
# EXTRA_TARGETS (more targets to build), EXTRA_RUN (a command line run after the benchmarks).
# Every executable named test_cuda_* or bench_cuda_* under the build dir is run; the lead's
# targets join the build by depending from the custom target `redi_cuda_all`.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build-device}"
JOBS="${JOBS:-$(nproc)}"
OUTDIR="${OUT:-}"
T0=$(date +%s)
export PATH="/usr/local/cuda/bin:$PATH"

say() { printf '\n=== %s (t=%ss)\n' "$*" "$(( $(date +%s) - T0 ))"; }

if [[ -z "${ARCH:-}" ]]; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  ARCH="${cc:-90}"
fi
say "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>/dev/null \
  || echo "nvidia-smi not available"
for tool in cmake nvcc; do
  command -v "$tool" >/dev/null || { echo "device_check: '$tool' not found on PATH"; exit 2; }
done
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)

say "configure (CUDA archs $ARCH, $JOBS jobs)"
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DREDI_WITH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DREDI_BUILD_TESTS=ON -DREDI_BUILD_EXAMPLES=OFF \
  -DREDI_BUILD_BENCHMARKS=OFF > "$BUILD.configure.log" 2>&1 \
  || { tail -40 "$BUILD.configure.log"; echo "device_check: configure FAILED"; exit 3; }
tail -3 "$BUILD.configure.log"

say "build redi_cuda_all ${EXTRA_TARGETS:-}"
# shellcheck disable=SC2086
if ! cmake --build "$BUILD" --target redi_cuda_all ${EXTRA_TARGETS:-} -j "$JOBS" \
     > "$BUILD.build.log" 2>&1; then
  grep -E "error|Error" "$BUILD.build.log" | head -40
  echo "device_check: build FAILED (full log: $BUILD.build.log)"
  exit 4
fi
echo "built in $(( $(date +%s) - T0 ))s"

declare -a SUMMARY
FAILED=0
TOTAL_PASSED=0
say "tests"
while IFS= read -r exe; do
  name=$(basename "$exe")
  log="$BUILD/$name.log"
  timeout 240 "$exe" --gtest_color=no > "$log" 2>&1
  rc=$?
  passed=$(grep -oE '\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  skipped=$(grep -oE '\[  SKIPPED \] [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  nfail=$(grep -cE '^\[  FAILED  \] .*\(' "$log" || true)
  TOTAL_PASSED=$(( TOTAL_PASSED + ${passed:-0} ))
  SUMMARY+=("$(printf '%-28s rc=%-3s passed=%-4s failed=%-4s skipped=%s' "$name" "$rc" \
                "${passed:-0}" "${nfail:-0}" "${skipped:-0}")")
  if [[ $rc -ne 0 ]]; then
    FAILED=1
    grep -E '^\[  FAILED  \]|Failure|error|out of tolerance|Expected|Which is' "$log" | head -40
  fi
done < <(find "$BUILD" -type f -perm -u+x -name 'test_cuda_*' | sort)

if [[ "${BENCH:-1}" != "0" ]]; then
  say "benchmarks"
  while IFS= read -r exe; do
    name=$(basename "$exe")
    timeout 300 "$exe" --benchmark_counters_tabular=true \
      --benchmark_out="$BUILD/$name.json" --benchmark_out_format=json 2>&1 | tee "$BUILD/$name.log"
    SUMMARY+=("$(printf '%-28s rc=%s (see %s.json)' "$name" "${PIPESTATUS[0]}" "$name")")
  done < <(find "$BUILD" -type f -perm -u+x -name 'bench_cuda_*' | sort)
fi

if [[ -n "${EXTRA_RUN:-}" ]]; then
  say "extra: $EXTRA_RUN"
  bash -c "$EXTRA_RUN" 2>&1 | tee "$BUILD/extra_run.log"
  SUMMARY+=("$(printf '%-28s rc=%s' "extra run" "${PIPESTATUS[0]}")")
fi

say "summary"
printf '%s\n' "${SUMMARY[@]}"
if [[ -n "$OUTDIR" ]]; then
  mkdir -p "$OUTDIR"
  cp "$BUILD"/*.log "$BUILD"/*.json "$OUTDIR"/ 2>/dev/null
  ls "$OUTDIR" | head -8
fi
if grep -q "no CUDA device available" "$BUILD"/test_cuda_*.log 2>/dev/null; then
  echo "WARNING: tests were SKIPPED for lack of a CUDA device — nothing was verified"
fi
echo "total $(( $(date +%s) - T0 ))s; $TOTAL_PASSED tests passed; $( [[ $FAILED -eq 0 ]] && echo NO TEST FAILED || echo SOME TESTS FAILED)"
exit $FAILED
