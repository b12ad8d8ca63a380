#!/usr/bin/env bash
# The quickstart: installs what is missing (Debian/Ubuntu, as root), builds redi_quickstart in
# Release and runs it. Arguments are passed to the program (e.g. --plain, --steps 3000,
# --minutes 30; see --help). Outputs land in runs/quickstart (runs/quickstart_plain with --plain).
#   bash examples/quickstart/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

# libopenblas-openmp-dev: OpenBLAS on libgomp's thread pool, which redi's CMake prefers (the
# pthread flavour's threads spin against OpenMP's: ~3x slower steps under load).
pkgs=(cmake ninja-build g++ libeigen3-dev libopenblas-openmp-dev zlib1g-dev dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "run.sh: missing Debian packages: ${missing[*]}" >&2
    echo "run.sh: install them (sudo apt-get install -y ${missing[*]}) or run this script as root" >&2
    exit 1
  fi
  echo "[run.sh] installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

build=${REDI_QUICKSTART_BUILD_DIR:-build-quickstart}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DREDI_WITH_CUDA=OFF \
    -DREDI_BUILD_TESTS=OFF -DREDI_BUILD_BENCHMARKS=OFF -DREDI_BUILD_EXAMPLES=ON -DREDI_INSTALL=OFF >/dev/null
fi
cmake --build "$build" --target redi_quickstart -j "$(nproc)"
built=$(date +%s)
echo "[run.sh] build: $((built - start)) s"

# Threads that wait passively: on a machine shared with other jobs, OpenMP's default busy
# waiting makes 2 threads up to 10x slower than 1 (measured; docs/training.md). Override freely.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
"$build/examples/quickstart/redi_quickstart" "$@"
echo "[run.sh] total (install + build + run): $(( $(date +%s) - start )) s"
