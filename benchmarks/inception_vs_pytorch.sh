#!/usr/bin/env bash
# The FID Inception forward at 299 (batch B): redi (bench_inception, Google Benchmark) and the
# PyTorch peer (inception_peer.py) in one run with the same thread count, and their ratio.
#   benchmarks/inception_vs_pytorch.sh BUILD_DIR [THREADS] [BATCH] [SECONDS]
set -euo pipefail
BUILD=${1:?usage: inception_vs_pytorch.sh BUILD_DIR [THREADS] [BATCH] [SECONDS]}
THREADS=${2:-$(nproc)}
B=${3:-8}
SECS=${4:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
redi=$("$BUILD/benchmarks/bench_inception" --benchmark_filter="BM_InceptionForward/$B\$" \
        --benchmark_min_time="$SECS" --benchmark_format=json |
       python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["images/s"])')
torch=$(python3 "$HERE/inception_peer.py" --threads "$THREADS" --batch "$B" --seconds "$SECS" | awk '{print $3}')
python3 - "$redi" "$torch" "$THREADS" "$B" <<'PY'
import sys
r, t, th, b = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
print("Inception-v3 forward @299, batch %s, %s threads: redi %.2f images/s, PyTorch %.2f images/s, ratio %.2fx"
      % (b, th, r, t, r / t))
PY
