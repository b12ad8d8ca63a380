#!/usr/bin/env bash
# tests/fuzz/ci.sh — CI's short fuzz run: builds the fuzz targets with clang in their own build
# dir (build-fuzz-ci) and runs each for REDI_FUZZ_SECONDS (default 40; 9 targets: ~6 minutes
# of fuzzing after the build) from the seed corpus. Fails when any target finds a crash, a
# sanitizer report or a non-redi exception. Installs clang/libFuzzer with apt-get when missing.
#
#   bash tests/fuzz/ci.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if ! command -v clang++ >/dev/null 2>&1 && ! command -v clang++-14 >/dev/null 2>&1 ||
   ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_=(); [[ $(id -u) -eq 0 ]] || sudo_=(sudo)
    "${sudo_[@]+"${sudo_[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    "${sudo_[@]+"${sudo_[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      clang libfuzzer-14-dev </dev/null
  fi
fi
export REDI_FUZZ_BUILD_DIR="${REDI_FUZZ_BUILD_DIR:-build-fuzz-ci}"
# A fresh corpus each time: CI tests the seeds and their mutations, not a grown corpus.
rm -rf "$REDI_FUZZ_BUILD_DIR/corpus" "$REDI_FUZZ_BUILD_DIR/artifacts"
exec bash tests/fuzz/run.sh "${REDI_FUZZ_SECONDS:-40}"
