#!/usr/bin/env bash
# tests/run_all.sh — redi's test command for a fresh Debian/Ubuntu machine (and CI's, through
# .ci/run): installs the missing build packages with apt-get, configures with
# REDI_WITH_CUDA=AUTO (the CUDA code compiles wherever nvcc is; GPU tests skip without a GPU),
# builds with Ninja and runs every ctest test.
#
#   bash tests/run_all.sh
#
# Environment knobs (all optional): REDI_BUILD_DIR (default build-tests), REDI_JOBS (default 2),
# REDI_WITH_CUDA (AUTO, ON or OFF; default AUTO), REDI_CUDA_ARCHS (CMAKE_CUDA_ARCHITECTURES,
# default 80;90), REDI_BUILD_TARGETS (space-separated targets to build instead of all),
# REDI_CTEST_ARGS (extra ctest arguments, e.g. "-L package" or "-E cuda"; split on spaces, no
# quoting), REDI_SANITIZE (0: skip the ASan/UBSan stage, tests/sanitize.sh), REDI_FUZZ (0: skip the
# short fuzz run, tests/fuzz/ci.sh; REDI_FUZZ_SECONDS per target, default 30).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${REDI_BUILD_DIR:-build-tests}"
jobs="${REDI_JOBS:-2}"
with_cuda="${REDI_WITH_CUDA:-AUTO}"
t0=$SECONDS
say() { printf '[run_all %4ds] %s\n' "$((SECONDS - t0))" "$*"; }

# ---- 1. system packages (Debian names; only the missing ones are installed)
packages=(g++ cmake ninja-build pkg-config libeigen3-dev libopenblas-dev libgtest-dev
          libbenchmark-dev libstb-dev libjpeg-dev zlib1g-dev dataset-fashion-mnist libopenblas-openmp-dev openmpi-bin libopenmpi-dev)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
      as_root=()
    elif command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "run_all: missing packages (${missing[*]}) and no root/sudo to install them" >&2
      exit 1
    fi
    say "installing: ${missing[*]}"
    "${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${missing[@]}" </dev/null
  else
    say "all packages present"
  fi
else
  say "no dpkg here: not installing packages; expecting ${packages[*]} (or equivalents)"
fi

# ---- 2. CUDA: make the toolkit's nvcc visible (CI's PATH may lack it); AUTO uses it if found
cuda_args=()
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
if [[ "$with_cuda" != "OFF" ]] && command -v nvcc >/dev/null 2>&1; then
  cuda_args+=("-DCMAKE_CUDA_COMPILER=$(command -v nvcc)")
  # REDI_CUDA_ARCHS="80" halves nvcc time (sm_80 code + PTX still runs on H100/H200 via JIT).
  if [[ -n "${REDI_CUDA_ARCHS:-}" ]]; then
    cuda_args+=("-DCMAKE_CUDA_ARCHITECTURES=${REDI_CUDA_ARCHS}")
  fi
fi

# ---- 3. configure, build, test
say "configure ($build_dir, REDI_WITH_CUDA=$with_cuda)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DREDI_WITH_CUDA="$with_cuda" -DREDI_BUILD_TESTS=ON -DREDI_BUILD_BENCHMARKS=ON \
  -DREDI_BUILD_EXAMPLES=ON "${cuda_args[@]+"${cuda_args[@]}"}"
say "build (-j$jobs${REDI_BUILD_TARGETS:+, targets: $REDI_BUILD_TARGETS})"
target_args=()
for t in ${REDI_BUILD_TARGETS:-}; do target_args+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${target_args[@]+"${target_args[@]}"}"
say "ctest"
# ctest runs $jobs tests at once, each with OpenMP threads: spin-waiting threads on
# oversubscribed cores cost up to 10x, so idle threads sleep (unless the caller says otherwise).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# shellcheck disable=SC2086  # REDI_CTEST_ARGS is a list of words on purpose
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 1800 ${REDI_CTEST_ARGS:-}

# ---- 4. the unit-test subset under ASan + UBSan (clang; docs/crash_safety.md). REDI_SANITIZE=0 skips it.
if [[ "${REDI_SANITIZE:-1}" != "0" ]]; then
  say "sanitizers (tests/sanitize.sh)"
  REDI_JOBS="$jobs" bash tests/sanitize.sh
fi

# ---- 5. a short libFuzzer run of every file reader (clang; docs/security.md). REDI_FUZZ=0 skips it;
# REDI_FUZZ_SECONDS sets the seconds per target (default 30 here).
if [[ "${REDI_FUZZ:-1}" != "0" ]]; then
  say "fuzzing (tests/fuzz/ci.sh)"
  REDI_FUZZ_SECONDS="${REDI_FUZZ_SECONDS:-30}" bash tests/fuzz/ci.sh
fi
say "done"
