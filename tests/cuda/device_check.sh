#!/usr/bin/env bash
# tests/cuda/device_check.sh — build redi's CUDA targets, run the CUDA tests, the op and
# training-step benchmarks and (when torch imports) the PyTorch reference step, and print one
# summary table. Sized for < 8 minutes on one H100 with 16 cores.
#
#   OUT=$OUT JOBS=16 bash tests/cuda/device_check.sh      # on the lent GPU machine
#   BUILD=/tmp/b ARCH=90 JOBS=16 bash tests/cuda/device_check.sh
#   BUILD_ONLY=1 ARCH=90 JOBS=2 bash tests/cuda/device_check.sh   # dry run of the build part
#
# Env: BUILD (build dir, default <repo>/build-device), ARCH (CMAKE_CUDA_ARCHITECTURES; default
# from nvidia-smi's compute capability, else 90), JOBS (default nproc), OUT (a folder to copy
# logs and benchmark JSON into, e.g. $OUT on the device machine), BENCH=0 skips all benchmarks,
# OPS_BENCH=0 skips bench_cuda_ops only, TORCH=0 skips the PyTorch reference, STEPS (timed
# training steps, default 5), PRECISION (bench_cuda_train_step --precision and the PyTorch
# reference's: bf16|fp32|both, default bf16 to stay within 8 minutes), BUILD_ONLY=1 stops after the build, TARGETS (what to build,
# default redi_cuda_all), EXTRA_TARGETS (more targets), EXTRA_RUN (a command line run last).
# Every executable named test_cuda_* under the build dir is run as a gtest binary; the lead's
# targets join the build by depending from the custom target `redi_cuda_all`.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build-device}"
JOBS="${JOBS:-$(nproc)}"
OUTDIR="${OUT:-}"
STEPS="${STEPS:-5}"
PRECISION="${PRECISION:-bf16}"
T0=$(date +%s)
export PATH="/usr/local/cuda/bin:$PATH"

say() { printf '\n=== %s (t=%ss)\n' "$*" "$(( $(date +%s) - T0 ))"; }
# value of key $3 on the "RESULT $1 ..." line of file $2 (empty when absent)
result() {
  grep -E "^RESULT $1( |$)" "$2" 2>/dev/null | tail -1 | tr ' ' '\n' | grep -E "^$3=" | head -1 \
    | cut -d= -f2- | tr -d '"'
}
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

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

TARGETS="${TARGETS:-redi_cuda_all}"
say "build $TARGETS ${EXTRA_TARGETS:-}"
# shellcheck disable=SC2086
if ! cmake --build "$BUILD" --target $TARGETS ${EXTRA_TARGETS:-} -j "$JOBS" \
     > "$BUILD.build.log" 2>&1; then
  grep -E "error|Error" "$BUILD.build.log" | head -40
  echo "device_check: build FAILED (full log: $BUILD.build.log)"
  [[ -n "$OUTDIR" ]] && mkdir -p "$OUTDIR" && cp "$BUILD".*.log "$OUTDIR"/ 2>/dev/null
  exit 4
fi
T_BUILD=$(( $(date +%s) - T0 ))
echo "built in ${T_BUILD}s"
if [[ "${BUILD_ONLY:-0}" == "1" ]]; then
  echo "BUILD_ONLY=1: stopping after the build"
  exit 0
fi

declare -a SUMMARY
FAILED=0
TOTAL_PASSED=0
say "tests"
while IFS= read -r exe; do
  name=$(basename "$exe")
  log="$BUILD/$name.log"
  t1=$(date +%s)
  timeout 240 "$exe" --gtest_color=no > "$log" 2>&1
  rc=$?
  passed=$(grep -oE '\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  skipped=$(grep -oE '\[  SKIPPED \] [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  nfail=$(grep -cE '^\[  FAILED  \] .*\(' "$log" || true)
  TOTAL_PASSED=$(( TOTAL_PASSED + ${passed:-0} ))
  SUMMARY+=("$(printf '%-26s rc=%-3s passed=%-4s failed=%-4s skipped=%-4s %4ss' "$name" "$rc" \
                "${passed:-0}" "${nfail:-0}" "${skipped:-0}" "$(( $(date +%s) - t1 ))")")
  if [[ $rc -ne 0 ]]; then
    FAILED=1
    grep -E '^\[  FAILED  \]|Failure|error|out of tolerance|Expected|Which is' "$log" | head -40
  fi
done < <(find "$BUILD" -type f -perm -u+x -name 'test_cuda_*' | sort)

STEP_LOG="$BUILD/bench_cuda_train_step.log"
TORCH_LOG="$BUILD/pytorch_reference_step.log"
if [[ "${BENCH:-1}" != "0" ]]; then
  OPS_EXE="$BUILD/tests/cuda/bench_cuda_ops"
  if [[ "${OPS_BENCH:-1}" != "0" && -x "$OPS_EXE" ]]; then
    say "bench_cuda_ops"
    t1=$(date +%s)
    timeout 240 "$OPS_EXE" --benchmark_counters_tabular=true \
      --benchmark_out="$BUILD/bench_cuda_ops.json" --benchmark_out_format=json 2>&1 \
      | tee "$BUILD/bench_cuda_ops.log"
    SUMMARY+=("$(printf '%-26s rc=%-3s (bench_cuda_ops.json) %28ss' bench_cuda_ops \
                  "${PIPESTATUS[0]}" "$(( $(date +%s) - t1 ))")")
  fi
  STEP_EXE="$BUILD/tests/cuda/bench_cuda_train_step"
  if [[ -x "$STEP_EXE" ]]; then
    say "bench_cuda_train_step (SiT-XL/2 ReDi, $PRECISION)"
    t1=$(date +%s)
    timeout 360 "$STEP_EXE" --steps "$STEPS" --precision "$PRECISION" \
      --json "$BUILD/bench_cuda_train_step.json" 2>&1 \
      | tee "$STEP_LOG"
    SUMMARY+=("$(printf '%-26s rc=%-3s (bench_cuda_train_step.json) %19ss' \
                  bench_cuda_train_step "${PIPESTATUS[0]}" "$(( $(date +%s) - t1 ))")")
  fi
  PY=""  # the first Python that imports torch (PYTHON, python3 on PATH, the system one)
  for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if [[ -z "$PY" ]] && "$cand" -c "import torch" 2>/dev/null; then PY="$cand"; fi
  done
  if [[ "${TORCH:-1}" != "0" && -n "$PY" ]]; then
    B=$(result train_step_bf16 "$STEP_LOG" bf16_batch)
    [[ -z "$B" ]] && B=$(result train_step_fp32 "$STEP_LOG" fp32_batch)
    B="${B%%.*}"
    case "$PRECISION" in bf16) TORCH_PRECISION=bf16 ;; fp32) TORCH_PRECISION=tf32 ;; *) TORCH_PRECISION=bf16,tf32 ;; esac
    say "PyTorch reference step (batch ${B:-64}, $TORCH_PRECISION)"
    t1=$(date +%s)
    timeout 300 "$PY" "$ROOT/tests/cuda/pytorch_reference_step.py" --batch "${B:-64}" \
      --steps "$STEPS" --precision "$TORCH_PRECISION" --json "$BUILD/pytorch_reference_step.json" 2>&1 \
      | tee "$TORCH_LOG"
    SUMMARY+=("$(printf '%-26s rc=%-3s (pytorch_reference_step.json) %18ss' \
                  pytorch_reference "${PIPESTATUS[0]}" "$(( $(date +%s) - t1 ))")")
  else
    echo "PyTorch reference skipped (TORCH=0 or 'import torch' fails)" | tee "$TORCH_LOG"
  fi
fi

if [[ -n "${EXTRA_RUN:-}" ]]; then
  say "extra: $EXTRA_RUN"
  bash -c "$EXTRA_RUN" 2>&1 | tee "$BUILD/extra_run.log"
  SUMMARY+=("$(printf '%-26s rc=%s' "extra run" "${PIPESTATUS[0]}")")
fi

say "summary"
printf '%s\n' "${SUMMARY[@]}"
if [[ "${BENCH:-1}" != "0" ]]; then
  p_bf=$(result pytorch_train_bf16 "$TORCH_LOG" images_per_s)
  p_tf=$(result pytorch_train_tf32 "$TORCH_LOG" images_per_s)
  ps_bf=$(result pytorch_sample_bf16 "$TORCH_LOG" images_x_steps_per_s)
  ps_tf=$(result pytorch_sample_tf32 "$TORCH_LOG" images_x_steps_per_s)
  echo
  printf '%-48s %s\n' "metric (SiT-XL/2 ReDi, 32x32, 4+8 ch)" "value"
  printf '%-48s %s\n' "GEMM 8192^3 bf16 / TF32 (TFLOP/s)" \
    "$(result gemm "$STEP_LOG" gemm_bf16_8192_tflops) / $(result gemm "$STEP_LOG" gemm_tf32_8192_tflops)"
  for pr in bf16 fp32; do
    tl="train_step_$pr"
    r_ips=$(result "$tl" "$STEP_LOG" "${pr}_train_images_per_s")
    r_smp=$(result "sample_cfg_$pr" "$STEP_LOG" "${pr}_sample_images_x_nfe_per_s")
    [[ -z "$r_ips" && -z "$r_smp" ]] && continue
    if [[ $pr == bf16 ]]; then p_ips="$p_bf"; p_smp="$ps_bf"; else p_ips="$p_tf"; p_smp="$ps_tf"; fi
    printf '%-48s %s\n' "redi $pr: batch / step ms / attention" \
      "$(result "$tl" "$STEP_LOG" "${pr}_batch") / $(result "$tl" "$STEP_LOG" "${pr}_step_ms") / $(result "$tl" "$STEP_LOG" "${pr}_flash_attention")"
    printf '%-48s %s\n' "redi $pr: train images/s" "${r_ips:-n/a}"
    printf '%-48s %s\n' "redi $pr: train TFLOP/s / MFU vs bf16 GEMM" \
      "$(result "$tl" "$STEP_LOG" "${pr}_train_tflops") / $(result "$tl" "$STEP_LOG" "${pr}_mfu_vs_bf16_gemm")"
    printf '%-48s %s\n' "redi $pr: step / device fwd+bwd alone" \
      "$(result "device_fwd_bwd_$pr" "$STEP_LOG" "${pr}_step_over_fwd_bwd")"
    printf '%-48s %s\n' "redi $pr: sampling images*NFE/s (256 img, CFG)" "${r_smp:-n/a}"
    printf '%-48s %s\n' "PyTorch ($pr autocast / TF32): train images/s" "${p_ips:-n/a}"
    printf '%-48s %s\n' "PyTorch: sampling images*steps/s" "${p_smp:-n/a}"
    printf '%-48s %s\n' "ratio redi/PyTorch $pr: train / sampling" \
      "$(ratio "$r_ips" "$p_ips") / $(ratio "$r_smp" "$p_smp")"
  done
fi
if [[ -n "$OUTDIR" ]]; then
  mkdir -p "$OUTDIR"
  cp "$BUILD"/*.log "$BUILD"/*.json "$BUILD".*.log "$OUTDIR"/ 2>/dev/null
  ls "$OUTDIR" | head -20
fi
if grep -q "no CUDA device available" "$BUILD"/test_cuda_*.log 2>/dev/null; then
  echo "WARNING: tests were SKIPPED for lack of a CUDA device — nothing was verified"
fi
echo "total $(( $(date +%s) - T0 ))s (build ${T_BUILD}s); $TOTAL_PASSED tests passed;" \
     "$( [[ $FAILED -eq 0 ]] && echo NO TEST FAILED || echo SOME TESTS FAILED)"
exit $FAILED
