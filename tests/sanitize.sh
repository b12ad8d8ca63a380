#!/usr/bin/env bash
# tests/sanitize.sh — redi's unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (docs/crash_safety.md, "Sanitizers"). A separate build directory, clang 14 (so CI also proves
# that clang builds the library; libomp for OpenMP, OpenBLAS uninstrumented), -O1 -g1,
# -fno-sanitize-recover=all (the first UB report fails the test), leak checking on where
# LeakSanitizer can run. Builds and runs a chosen subset of the tests: the file readers and
# writers, the data readers, the CPU ops, the model/blocks, checkpoints and resume, the
# crash-safety tests and a short kill -9 run. tests/run_all.sh calls it after the normal ctest
# (REDI_SANITIZE=0 skips it).
#
#   bash tests/sanitize.sh
#
# Environment knobs: REDI_SANITIZE_BUILD_DIR (default build-sanitize), REDI_JOBS (default 2),
# REDI_SANITIZE_CXX (default clang++-14, else clang++), REDI_SANITIZE_TESTS (space-separated test
# executables instead of the default list), REDI_SANITIZE_KILLS (kill -9 runs, default 10; 0 skips).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${REDI_SANITIZE_BUILD_DIR:-build-sanitize}"
jobs="${REDI_JOBS:-2}"
kills="${REDI_SANITIZE_KILLS:-10}"
t0=$SECONDS
say() { printf '[sanitize %4ds] %s\n' "$((SECONDS - t0))" "$*"; }

# ---- 1. clang, its sanitizer runtimes and libomp (Debian names; only the missing ones)
packages=(clang-14 libclang-rt-14-dev libomp-14-dev)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then as_root=(); elif command -v sudo >/dev/null 2>&1; then as_root=(sudo); else
      echo "sanitize: missing packages (${missing[*]}) and no root/sudo to install them" >&2
      exit 1
    fi
    say "installing: ${missing[*]}"
    "${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${missing[@]}" </dev/null
  fi
fi
cxx="${REDI_SANITIZE_CXX:-}"
if [[ -z "$cxx" ]]; then
  if command -v clang++-14 >/dev/null 2>&1; then cxx=clang++-14; else cxx=clang++; fi
fi
command -v "$cxx" >/dev/null 2>&1 || { echo "sanitize: no $cxx" >&2; exit 1; }

# ---- 2. configure + build the chosen tests
tests=(test_core test_io_safetensors test_io_torch test_io_hostile test_train_io test_crash_safety
       test_data_idx test_data_images test_data_jpeg test_data_jpeg_missing test_data_pca test_data_transforms test_data_augment
       test_ops_attention test_ops_conv test_ops_linear test_ops_misc test_ops_norm
       test_block test_model test_train_resume)
if [[ -n "${REDI_SANITIZE_TESTS:-}" ]]; then read -r -a tests <<<"$REDI_SANITIZE_TESTS"; fi
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
say "configure ($build_dir, $cxx, $flags)"
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Sanitize \
  -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1 $flags -Wno-pass-failed" \
  -DCMAKE_EXE_LINKER_FLAGS_SANITIZE="$flags" \
  -DREDI_WITH_CUDA=OFF -DREDI_BUILD_TESTS=ON -DREDI_BUILD_BENCHMARKS=OFF -DREDI_BUILD_EXAMPLES=OFF \
  >"$build_dir/configure.log" 2>&1 || { cat "$build_dir/configure.log"; exit 1; }
targets=("${tests[@]}")
((kills > 0)) && targets+=(redi_kill_test)
target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
say "build (-j$jobs): ${targets[*]}"
cmake --build "$build_dir" -j "$jobs" "${target_args[@]}"

# ---- 3. run them
# LeakSanitizer needs ptrace-like rights that some containers withhold: probe it once.
leaks=1
probe="$build_dir/lsan_probe"
printf 'int main(){return 0;}\n' | "$cxx" -x c++ -fsanitize=address - -o "$probe"
if ! ASAN_OPTIONS=detect_leaks=1 "$probe" >/dev/null 2>&1; then
  leaks=0
  say "LeakSanitizer cannot run here: leak checking off (ASan + UBSan still on)"
fi
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export REDI_TEST_DATA="$root/tests/data"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
logs="$build_dir/sanitize-logs"
rm -rf "$logs" && mkdir -p "$logs"
say "run ${#tests[@]} test programs ($jobs at a time)"
run_one() {  # a test program; its log is kept, shown on failure
  local t="$1" s=$SECONDS
  if "$build_dir/tests/$t" --gtest_brief=1 >"$logs/$t.log" 2>&1; then
    echo "  ok   $t ($((SECONDS - s)) s)"
  else
    echo "  FAIL $t ($((SECONDS - s)) s)"; tail -n 60 "$logs/$t.log"; return 1
  fi
}
export -f run_one
export build_dir logs
printf '%s\n' "${tests[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} || failed=1
if ((kills > 0)); then
  s=$SECONDS
  if "$build_dir/tests/crash/redi_kill_test" --kills "$kills" --max-delay-ms 800 --dir "$build_dir/kill_test_run" >"$logs/kill_test.log" 2>&1; then
    echo "  ok   redi_kill_test --kills $kills ($((SECONDS - s)) s): $(tail -n 1 "$logs/kill_test.log")"
  else
    echo "  FAIL redi_kill_test --kills $kills"; tail -n 60 "$logs/kill_test.log"; failed=1
  fi
fi
if [[ -n "${failed:-}" ]]; then say "FAILED (logs in $logs)"; exit 1; fi
say "done: all clean"
