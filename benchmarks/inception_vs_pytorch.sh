#!/usr/bin/env bash
# The FID Inception forward at 299 (batch B): redi (bench_inception, Google Benchmark) and the
# PyTorch peer (inception_peer.py) in one run with the same thread count, and their ratio.
# ROUNDS alternating rounds of SECONDS each; each side's best round counts (robust to other
# load on the machine, which only ever slows a round down).
#   [PYTHON=python-with-torch] benchmarks/inception_vs_pytorch.sh BUILD_DIR [THREADS] [BATCH] [SECONDS] [ROUNDS]
set -euo pipefail
BUILD=${1:?usage: inception_vs_pytorch.sh BUILD_DIR [THREADS] [BATCH] [SECONDS] [ROUNDS]}
THREADS=${2:-$(nproc)}
B=${3:-8}
SECS=${4:-10}
ROUNDS=${5:-3}
PYTHON=${PYTHON:-python3}  # one with torch (the peer)
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
redi_all=() torch_all=()
for ((r = 0; r < ROUNDS; ++r)); do
  redi_all+=("$("$BUILD/benchmarks/bench_inception" --benchmark_filter="BM_InceptionForward/$B/" \
                 --benchmark_min_time="$SECS" --benchmark_format=json |
                "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["images/s"])')")
  torch_all+=("$("$PYTHON" "$HERE/inception_peer.py" --threads "$THREADS" --batch "$B" --seconds "$SECS" | awk '{print $3}')")
done
"$PYTHON" - "$THREADS" "$B" "${redi_all[*]}" "${torch_all[*]}" <<'PY'
import sys
th, b = sys.argv[1], sys.argv[2]
r = [float(v) for v in sys.argv[3].split()]
t = [float(v) for v in sys.argv[4].split()]
print("rounds: redi %s images/s; PyTorch %s images/s" % (" ".join("%.2f" % v for v in r), " ".join("%.2f" % v for v in t)))
print("Inception-v3 forward @299, batch %s, %s threads: redi %.2f images/s, PyTorch %.2f images/s (best rounds), ratio %.2fx"
      % (b, th, max(r), max(t), max(r) / max(t)))
PY
