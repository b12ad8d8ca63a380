#!/usr/bin/env bash
# tests/cuda/device_check.sh — redi's check on a lent GPU machine: configure + build the CUDA
# targets, run the CUDA tests, the op and training-step benchmarks and (pass 2) the PyTorch
# reference step, under ONE global deadline, streaming the figures into $OUT as they come.
# Written for the machine as it is: nvcc, CMake, ninja, PyTorch — and no Eigen, GoogleTest or
# Google Benchmark (carried in the folder tests/cuda/prepare_device.sh made, found through the
# dependency provider tests/cuda/device_deps.cmake), cuDNN and NVRTC only inside PyTorch's wheels.
#
#   bash tests/cuda/device_check.sh --pass 1 --out "$OUT"   # tests + redi benchmarks (no PyTorch)
#   bash tests/cuda/device_check.sh --pass 2 --out "$OUT"   # training step + PyTorch reference
#   bash tests/cuda/device_check.sh --dry-run               # here, without a GPU (see below)
#
# Options:
#   --pass 1|2        stage set: 1 = tests ops step (default), 2 = step torch
#   --stages LIST     explicit comma list of tests, ops, step, torch (overrides --pass)
#   --deadline S      the whole script, configure and build included, ends within S seconds
#                     (default 420; dry run 900); each stage gets min(its cap, what is left)
#   --out DIR         where summary.txt and logs.tar.gz go (default: $OUT when set)
#   --build DIR       build folder (default build-device; dry run build-devcheck-dry)
#   --deps DIR        the prepared folder (default .device-deps)
#   --prepare         run tests/cuda/prepare_device.sh --dest <deps> first (needs Debian apt)
#   --arch A          CMAKE_CUDA_ARCHITECTURES (default: nvidia-smi's compute capability, else 90)
#   --jobs N          build parallelism (default nproc)
#   --steps N         timed training steps (default 5)
#   --precision P     bench_cuda_train_step / PyTorch precision: bf16 (default), fp32, both
#   --targets "A B"   build exactly these targets instead of what the stages need
#   --fresh           delete the build folder first (a dry run does, unless --no-fresh)
#   --dry-run         run here without a GPU: the system's Eigen/GTest/benchmark hidden with
#                     CMAKE_IGNORE_PATH, cuDNN taken from a simulated wheel folder (headers +
#                     libcudnn.so.N only), only test_cuda_device built (--targets for more); the
#                     stages run what was built and report their skips; checks that nothing of
#                     the system's copies leaked into the build. Exit 77 (skip) without nvcc or
#                     cuDNN here, or when REDI_DEVCHECK_SKIP is set (ctest: CUDA off).
#
# $OUT receives summary.txt (one line per figure, rewritten as each line comes) and logs.tar.gz
# (every log, the benchmark JSON, build unit times; rewritten after each stage); both are written
# once more at the end: by the check's EXIT trap, or, on TERM/INT/HUP, by the parent shell that
# waits for it. A stage that overruns its time is killed (TERM, KILL 10 s later) and reported,
# and the next stage runs. Stage caps (s): configure 120, build all that is left, each test
# binary 150, bench_cuda_ops 150, bench_cuda_train_step 300, PyTorch 240.
# Exit status: 0 when everything ran and passed; 1 otherwise (the summary's "result:" line says
# why); 2 bad usage or a missing tool; 77 dry run skipped.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

PASS=1 STAGES="" DEADLINE="" OUTDIR="${OUT:-}" BUILD="" DEPS="$ROOT/.device-deps" ARCH="${ARCH:-}"
JOBS="" STEPS=5 PRECISION=bf16 DRY=0 TARGETS="" PREPARE=0 FRESH=""
usage() { sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}"; }
while (($#)); do
  case "$1" in
    --pass) PASS="$2"; shift 2 ;;
    --stages) STAGES="${2//,/ }"; shift 2 ;;
    --deadline) DEADLINE="$2"; shift 2 ;;
    --out) OUTDIR="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --deps) DEPS="$2"; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    --arch) ARCH="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --precision) PRECISION="$2"; shift 2 ;;
    --targets) TARGETS="$2"; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --no-fresh) FRESH=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device_check: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$STAGES" ]]; then
  case "$PASS" in
    1) STAGES="tests ops step" ;;
    2) STAGES="step torch" ;;
    *) echo "device_check: --pass must be 1 or 2" >&2; exit 2 ;;
  esac
  ((DRY)) && [[ "$PASS" == 1 ]] && STAGES="tests ops step torch"  # the dry run walks them all
fi
for s in $STAGES; do
  [[ "$s" =~ ^(tests|ops|step|torch)$ ]] || { echo "device_check: unknown stage '$s'" >&2; exit 2; }
done
case "$PRECISION" in bf16|fp32|both) ;; *) echo "device_check: --precision bf16|fp32|both" >&2; exit 2 ;; esac
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

T0=$(date +%s)
DEADLINE="${DEADLINE:-$( ((DRY)) && echo 900 || echo 420)}"
RESERVE=8      # seconds kept back for the final summary and archive
MIN_STAGE=10   # a stage is not started with less than this
JOBS="${JOBS:-$(nproc)}"
export PATH="$PATH:/usr/local/cuda/bin"

# ---- skips of the dry run (ctest passes SKIP_RETURN_CODE 77)
if ((DRY)) && [[ -n "${REDI_DEVCHECK_SKIP:-}" ]]; then
  echo "device_check --dry-run: SKIPPED: $REDI_DEVCHECK_SKIP"; exit 77
fi
NVCC="${CUDACXX:-$(command -v nvcc || true)}"
if [[ -z "$NVCC" || ! -x "$NVCC" ]]; then
  if ((DRY)); then echo "device_check --dry-run: SKIPPED: no nvcc (CUDACXX='${CUDACXX:-}', PATH)"; exit 77; fi
  echo "device_check: nvcc not found (PATH, CUDACXX)" >&2; exit 2
fi
command -v cmake >/dev/null || { echo "device_check: cmake not found" >&2; exit 2; }

if ((DRY)); then BUILD="${BUILD:-$ROOT/build-devcheck-dry}"; FRESH="${FRESH:-1}"; else BUILD="${BUILD:-$ROOT/build-device}"; fi
mkdir -p "$(dirname "$BUILD")"
BUILD="$(cd "$(dirname "$BUILD")" && pwd)/$(basename "$BUILD")"
DEPS="$(mkdir -p "$DEPS" && cd "$DEPS" && pwd)"
PY="${PYTHON:-$(command -v python3 || command -v python || echo python3)}"
ORIG_LD="${LD_LIBRARY_PATH:-}"

# ---- output: the summary and the log archive, both rewritten as the check goes
[[ "$FRESH" == 1 ]] && rm -rf "$BUILD"
LOGDIR="$BUILD/devcheck-logs"
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
[[ -n "$OUTDIR" ]] && mkdir -p "$OUTDIR"
SUMMARY="$LOGDIR/summary.txt"
: > "$SUMMARY"
el() { echo $(( $(date +%s) - T0 )); }
publish() {  # $OUT/summary.txt: copied whole (a reader never sees half a file for long)
  [[ -n "$OUTDIR" ]] || return 0
  cp -f "$SUMMARY" "$BUILD/.summary.tmp" && mv -f "$BUILD/.summary.tmp" "$OUTDIR/summary.txt"
}
line() { printf '%s\n' "$*" | tee -a "$SUMMARY"; publish; }
pack_logs() {
  [[ -n "$OUTDIR" ]] || return 0
  tar -czf "$BUILD/.logs.tmp.tar.gz" -C "$BUILD" devcheck-logs 2>/dev/null \
    && mv -f "$BUILD/.logs.tmp.tar.gz" "$OUTDIR/logs.tar.gz"
}
declare -a FAILS=() SKIPS=()
fail() { FAILS+=("$1"); }
skip() { SKIPS+=("$1"); }
TESTS_PASSED=0 TESTS_FAILED=0 TESTS_SKIPPED=0 SKIP_REASON=""

CHILD=""
# The body's end (EXIT trap): the totals, the result line, the archive, the status.
finalize() {
  local rc=$?  # the script's own status: non-zero here without a recorded failure = a script error
  trap - EXIT
  ((rc != 0 && ${#FAILS[@]} == 0)) && fail "script-error(rc=$rc)"
  local verdict=PASS
  ((${#FAILS[@]})) && verdict=FAIL
  line "tests total: passed=$TESTS_PASSED failed=$TESTS_FAILED skipped=$TESTS_SKIPPED${SKIP_REASON:+ (skip reason: $SKIP_REASON)}"
  ((${#SKIPS[@]})) && line "skipped: ${SKIPS[*]}"
  if ((${#FAILS[@]})); then line "failed: ${FAILS[*]}"; fi
  if ((!DRY)) && ((TESTS_PASSED == 0 && TESTS_SKIPPED > 0)); then
    line "WARNING: every CUDA test skipped (no usable device?): nothing was verified"
  fi
  line "result: $verdict in $(el)s (deadline ${DEADLINE}s)"
  pack_logs
  [[ $verdict == PASS ]] && exit 0 || exit 1
}

# seconds a stage may run: its cap, cut to what is left before the deadline
budget() {
  local cap=$1 left=$(( T0 + DEADLINE - RESERVE - $(date +%s) ))
  ((left < cap)) && cap=$left
  echo "$cap"
}
# run_timed SECONDS LOG CMD...: CMD killed after SECONDS (TERM, then KILL 10 s later); returns
# its status (124/137: killed). The pid of its `timeout` is kept in .stage_pid for the parent.
run_timed() {
  local t=$1 log=$2; shift 2
  timeout -k 10 "$t" "$@" > "$log" 2>&1 < /dev/null &
  CHILD=$!
  echo "$CHILD" > "$LOGDIR/.stage_pid"
  wait "$CHILD"
  local rc=$?
  CHILD=""
  rm -f "$LOGDIR/.stage_pid"
  return $rc
}
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt" 2>/dev/null | head -1; }

# ---- the check runs in a child process (body); this shell only waits for it, so that a signal
# (the device tool's timeout, a Ctrl-C) is handled at a safe point: bash can misparse a trap that
# fires while it expands a command substitution.
body() {
  trap finalize EXIT
  ((DRY)) && line "devcheck DRY RUN (no GPU: configure + build + stages that skip) stages: $STAGES"
  ((DRY)) || line "devcheck pass $PASS, stages: $STAGES"
  line "started $(date -u +%Y-%m-%dT%H:%M:%SZ), deadline ${DEADLINE}s, $JOBS build jobs, build dir $BUILD"

  # ---- 0. the prepared folder (dry run / CI: made here; on the GPU machine: carried)
  if ((PREPARE)); then
    t=$(budget 300)
    run_timed "$t" "$LOGDIR/prepare.log" bash "$ROOT/tests/cuda/prepare_device.sh" --dest "$DEPS" \
      || line "prepare: rc=$? (see prepare.log)"
  fi
  if [[ -f "$DEPS/MANIFEST.txt" ]]; then
    cp "$DEPS/MANIFEST.txt" "$LOGDIR/deps-manifest.txt"
    line "prepared deps: $DEPS ($(du -sh "$DEPS" | cut -f1)): $(grep -vE '^(#|total)' "$DEPS/MANIFEST.txt" | cut -d' ' -f1,2 | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
  else
    line "prepared deps: none in $DEPS (system copies only; run tests/cuda/prepare_device.sh)"
  fi

  # ---- 1. the machine
  if ((DRY)); then
    export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
    # A wheel-layout cuDNN folder (site/nvidia/cudnn/{include,lib}, only libcudnn.so.N, no
    # unversioned name) made from this machine's cuDNN, and the system Eigen/GTest/benchmark
    # hidden from CMake: what the GPU machine offers.
    tk="$(cd "$(dirname "$NVCC")/.." && pwd)"
    hdr="" lib=""
    for d in "$tk/include" /usr/local/cuda/include /usr/include /usr/include/*-linux-gnu; do
      [[ -z "$hdr" && -f "$d/cudnn.h" ]] && hdr="$d"
    done
    for d in "$tk/lib64" "$tk/lib" /usr/local/cuda/lib64 /usr/lib/*-linux-gnu; do
      [[ -z "$lib" ]] && lib="$(ls "$d"/libcudnn.so.[0-9] 2>/dev/null | head -1)"
    done
    if [[ -z "$hdr" || -z "$lib" ]]; then
      trap - EXIT
      echo "device_check --dry-run: SKIPPED: no cuDNN on this machine to simulate the wheel with"
      exit 77
    fi
    FAKE="$BUILD/fake-site"
    mkdir -p "$FAKE/nvidia/cudnn/include" "$FAKE/nvidia/cudnn/lib"
    ln -sf "$hdr"/cudnn*.h "$FAKE/nvidia/cudnn/include/"
    ln -sf "$(readlink -f "$lib")" "$FAKE/nvidia/cudnn/lib/$(basename "$lib")"
    export REDI_WHEEL_SITE="$FAKE"
    IGNORE=()
    for d in /usr/share/eigen3/cmake /usr/local/share/eigen3/cmake \
             {/usr,/usr/local,}/lib{,64,/*-linux-gnu}/cmake/{eigen3,Eigen3,GTest,benchmark} \
             {/usr,/usr/local}/share/cmake/{eigen3,Eigen3,GTest,benchmark}; do
      [[ -d "$d" ]] && IGNORE+=("$d")
    done
    for d in /usr/include /usr/local/include; do  # FindGTest's fallback looks for gtest/gtest.h
      [[ -f "$d/gtest/gtest.h" ]] && IGNORE+=("$d")
    done
    line "dry run: simulated wheel $FAKE/nvidia/cudnn (from $lib); hidden from CMake: ${IGNORE[*]:-nothing}"
  fi

  {
    echo "## date"; date -u
    echo "## nvidia-smi"; timeout 20 nvidia-smi 2>&1 | head -40
    echo "## nvcc"; "$NVCC" --version
    echo "## tools"; cmake --version | head -1; ninja --version 2>&1; c++ --version 2>&1 | head -1
    "$PY" --version 2>&1
    echo "## machine"; nproc; free -g 2>/dev/null; df -h "$BUILD" 2>/dev/null; uname -a
    cat /etc/os-release 2>/dev/null | head -4
    echo "## env"; env | grep -E '^(PATH|LD_LIBRARY_PATH|CUDA|CUDNN|OUT)' | sort
  } > "$LOGDIR/env.txt" 2>&1
  gpu="$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap \
           --format=csv,noheader 2>/dev/null | head -1)"
  line "device: ${gpu:-none (nvidia-smi reports no GPU)}"
  if [[ -z "$ARCH" ]]; then
    cc="$(echo "$gpu" | awk -F', ' '{print $4}' | tr -d ' .')"
    ARCH="${cc:-90}"
  fi
  line "host: $(nproc) cores, $(c++ --version 2>/dev/null | head -1), $(cmake --version | head -1), nvcc $("$NVCC" --version | grep -oE 'release [0-9.]+' | cut -d' ' -f2), ninja $(ninja --version 2>/dev/null || echo none), $("$PY" --version 2>&1)"

  # ---- PyTorch's wheels: cuDNN (headers + libcudnn.so.N) and the NVRTC/cuBLAS folders
  SITES="${REDI_WHEEL_SITE:-}"
  if [[ -z "$SITES" ]] && command -v "$PY" >/dev/null; then
    # (no here-document inside $(...): bash mis-parses a trap that fires while it reads one)
    SITES="$("$PY" -c 'import site, sys; print(":".join(dict.fromkeys(
      list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()] + sys.path)))' \
      2> /dev/null)"
  fi
  CUDNN_WHEEL="" WHEEL_LIBS=()
  IFS=':' read -r -a _sites <<< "$SITES"
  for d in "${_sites[@]}"; do
    [[ -d "$d/nvidia" ]] || continue
    if [[ -z "$CUDNN_WHEEL" && -f "$d/nvidia/cudnn/include/cudnn.h" ]] \
       && compgen -G "$d/nvidia/cudnn/lib/libcudnn.so*" > /dev/null; then
      CUDNN_WHEEL="$d/nvidia/cudnn"
    fi
    for l in "$d"/nvidia/*/lib; do
      [[ -d "$l" && "$l" != "$d/nvidia/cudnn/lib" ]] && WHEEL_LIBS+=("$l")
    done
  done
  line "wheels: cuDNN ${CUDNN_WHEEL:-none}; other nvidia lib folders: ${#WHEEL_LIBS[@]}"

  # ---- 2. configure
  GEN=() KEEP_GOING=(-k)
  if command -v ninja > /dev/null; then GEN=(-G Ninja); KEEP_GOING=(-k 0); fi
  CM=(cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DREDI_WITH_CUDA=ON
      -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
      -DREDI_BUILD_TESTS=ON -DREDI_BUILD_EXAMPLES=OFF -DREDI_BUILD_BENCHMARKS=OFF -DREDI_INSTALL=OFF
      -DCMAKE_PROJECT_TOP_LEVEL_INCLUDES="$ROOT/tests/cuda/device_deps.cmake"
      -DREDI_DEVICE_DEPS="$DEPS" -DREDI_DEVICE_CUDNN_ROOT="$CUDNN_WHEEL")
  if ((DRY)); then
    CM+=("-DCMAKE_IGNORE_PATH=$(IFS=';'; echo "${IGNORE[*]}")" -DREDI_DEVICE_DEPS_NO_SYSTEM=RediCUDNN)
  fi
  t=$(budget 120)
  t1=$(date +%s)
  run_timed "$t" "$LOGDIR/configure.log" "${CM[@]}"
  rc=$?
  deps="$(grep -oE 'redi-devcheck dep [A-Za-z0-9]+: [A-Za-z]+' "$LOGDIR/configure.log" \
          | sed 's/redi-devcheck dep //; s/: /=/' | tr '\n' ' ' | sed 's/ $//')"
  if ((rc != 0)); then
    line "configure: FAILED rc=$rc $(( $(date +%s) - t1 ))s; deps: ${deps:-?}"
    grep -E 'CMake Error|FATAL|redi-devcheck' -A3 "$LOGDIR/configure.log" | head -30
    fail configure
    exit 1  # finalize (EXIT trap) writes the result and the archive
  fi
  line "configure: ok $(( $(date +%s) - t1 ))s; deps: $deps"
  CUDNN_LIB="$(cache RediCUDNN_LIBRARY)"
  TK_LIB="$(dirname "$(cache CUDA_cudart_LIBRARY)")"
  line "cudnn: $CUDNN_LIB ($(grep -oE 'cuDNN [0-9.]+\)' "$LOGDIR/configure.log" | head -1 | tr -d ')'))"

  # The run-time library path of redi's programs: a wheel's cuDNN first (its folder holds only
  # libcudnn*), then the toolkit, then the other wheel folders (NVRTC, and the cuBLAS of cuDNN's
  # own CUDA major when it differs from the toolkit's: other sonames, so the toolkit's win).
  RUN_LD=()
  if [[ -n "$CUDNN_WHEEL" && "$CUDNN_LIB" == "$CUDNN_WHEEL"/* ]] \
     || { ((DRY)) && [[ "$CUDNN_LIB" == "$REDI_WHEEL_SITE"/* ]]; }; then
    RUN_LD+=("$(dirname "$CUDNN_LIB")" "$TK_LIB" "${WHEEL_LIBS[@]}")
  fi
  # cuDNN's runtime-compiled engines (the fused SDPA among them) dlopen the NVRTC of cuDNN's own
  # CUDA major: find that name in cuDNN and make sure the loader can see it.
  cudnn_dir="$(dirname "$(readlink -f "$CUDNN_LIB")")"
  nv_want="$(grep -m1 -aoE 'libnvrtc\.so\.[0-9]+' "$cudnn_dir"/libcudnn_engines_precompiled.so.[0-9]* 2>/dev/null | head -1)"
  nv_want="${nv_want##*:}"
  nv_pat="${nv_want:-libnvrtc.so.[0-9]*}"
  find_nvrtc() {
    local d f
    for d in "${RUN_LD[@]}" "$TK_LIB"; do
      f="$(ls "$d"/$nv_pat 2>/dev/null | head -1)"
      [[ -n "$f" ]] && { echo "$f"; return; }
    done
    ldconfig -p 2>/dev/null | grep -m1 -oE "=> .*/${nv_pat//\*/.*}$" | cut -c4-
  }
  nvrtc="$(find_nvrtc)"
  if [[ -z "$nvrtc" ]]; then  # a system cuDNN, NVRTC only in a wheel
    for l in "${WHEEL_LIBS[@]}"; do
      if compgen -G "$l/$nv_pat" > /dev/null; then RUN_LD+=("$TK_LIB" "$l"); break; fi
    done
    nvrtc="$(find_nvrtc)"
  fi
  RUN_LD_PATH="$(IFS=':'; echo "${RUN_LD[*]}")${ORIG_LD:+:$ORIG_LD}"
  RUN_LD_PATH="${RUN_LD_PATH#:}"
  line "runtime: LD_LIBRARY_PATH=${RUN_LD_PATH:-<unchanged>}"
  # (no apostrophe inside ${x:-...} in double quotes: bash reads it as an opening quote)
  [[ -n "$nvrtc" ]] || nvrtc="NOT FOUND: the runtime-compiled engines of cuDNN (fused SDPA) will fail"
  line "nvrtc: cuDNN loads ${nv_want:-libnvrtc.so.N (name not found in cuDNN)}: $nvrtc"
  RUN_ENV=(env LD_LIBRARY_PATH="$RUN_LD_PATH")

  # ---- 3. build (only what the stages run)
  have_target() { grep -qE "^build $1: phony" "$BUILD/build.ninja" 2>/dev/null \
                  || grep -qE "^$1:" "$BUILD/Makefile" 2>/dev/null; }
  TEST_TARGETS="$(grep -oE '^build test_cuda_[A-Za-z0-9_]+: phony' "$BUILD/build.ninja" 2>/dev/null \
                  | awk '{print $2}' | tr -d ':' | sort | tr '\n' ' ')"
  [[ -z "$TEST_TARGETS" ]] && TEST_TARGETS="test_cuda_redi test_cuda_vae test_cuda_model test_cuda_attention test_cuda_gemm test_cuda_norm test_cuda_elementwise test_cuda_device"
  OPS_REASON=""
  if ! have_target bench_cuda_ops; then
    OPS_REASON="not defined: no Google Benchmark (system or prepared)"
  fi
  if [[ -z "$TARGETS" ]]; then
    if ((DRY)); then
      TARGETS="test_cuda_device"
    else
      has_stage step && TARGETS+=" bench_cuda_train_step"
      has_stage tests && TARGETS+=" $TEST_TARGETS"
      has_stage ops && [[ -z "$OPS_REASON" ]] && TARGETS+=" bench_cuda_ops"
    fi
  fi
  read -r -a TGT <<< "$TARGETS"
  if ((${#TGT[@]})); then
    NLOG="$BUILD/.ninja_log"
    n0=0
    [[ -f "$NLOG" ]] && n0=$(wc -l < "$NLOG")
    t=$(budget "$DEADLINE")
    t1=$(date +%s)
    NICE=(); ((DRY)) && NICE=(nice -n 10)
    run_timed "$t" "$LOGDIR/build.log" "${NICE[@]}" cmake --build "$BUILD" -j "$JOBS" --target "${TGT[@]}" -- "${KEEP_GOING[@]}"
    rc=$?
    T_BUILD=$(( $(date +%s) - t1 ))
    built=() missing=()
    for tg in "${TGT[@]}"; do
      if [[ -x "$BUILD/tests/cuda/$tg" ]] || ! [[ "$tg" =~ ^(test|bench)_cuda_ ]]; then built+=("$tg"); else missing+=("$tg"); fi
    done
    if [[ -f "$NLOG" ]]; then  # this run's compile units, slowest first (ninja's own log, in ms)
      tail -n +$((n0 + 1)) "$NLOG" | awk '!/^#/ { printf "%8.1f %s\n", ($2 - $1) / 1000, $4 }' \
        | sort -rn > "$LOGDIR/build_units.txt"
      slow="$(head -5 "$LOGDIR/build_units.txt" | awk '{ n = split($2, p, "/"); printf "%s %.0fs, ", p[n], $1 }' | sed 's/, $//')"
    fi
    state=ok
    ((rc == 124 || rc == 137)) && state="TIMEOUT (killed after ${t}s)"
    ((rc != 0 && rc != 124 && rc != 137)) && state="FAILED rc=$rc"
    line "build: $state ${T_BUILD}s, $(wc -l 2> /dev/null < "$LOGDIR/build_units.txt" || echo '?') units; slowest: ${slow:-?}"
    if ((${#missing[@]})); then
      line "build: not built: ${missing[*]}"
      fail "build(${missing[*]})"
      grep -E 'error|Error' "$LOGDIR/build.log" | grep -v '^ninja: build stopped' | head -20
    elif ((rc != 0)); then
      fail "build(rc=$rc)"
    fi
  else
    line "build: nothing to build for stages '$STAGES'"
  fi
  pack_logs

  # ---- 4. stages
  not_built() {  # why an executable of a stage is absent
    if ((DRY)); then echo "not built in the dry run"; else echo "not built (see build.log)"; fi
  }

  if has_stage tests; then
    mapfile -t EXES < <(find "$BUILD/tests/cuda" -maxdepth 1 -type f -perm -u+x -name 'test_cuda_*' 2>/dev/null | sort)
    ((${#EXES[@]})) || { line "tests: no test_cuda_* executable: $(not_built)"; ((DRY)) || fail tests-missing; }
    for exe in "${EXES[@]}"; do
      name="$(basename "$exe")"
      log="$LOGDIR/$name.log"
      t=$(budget 150)
      if ((t < MIN_STAGE)); then line "test $name: NOT RUN (deadline)"; skip "$name(deadline)"; fail deadline; continue; fi
      t1=$(date +%s)
      run_timed "$t" "$log" "${RUN_ENV[@]}" "$exe" --gtest_color=no
      rc=$?
      p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
      s=$(grep -oE '^\[  SKIPPED \] [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
      f=$(grep -cE '^\[  FAILED  \] .*\([0-9]+ ms\)' "$log")
      TESTS_PASSED=$((TESTS_PASSED + ${p:-0})); TESTS_SKIPPED=$((TESTS_SKIPPED + ${s:-0}))
      TESTS_FAILED=$((TESTS_FAILED + ${f:-0}))
      note=""
      ((rc == 124 || rc == 137)) && note=" TIMEOUT (killed after ${t}s)"
      grep -q 'error while loading shared libraries' "$log" && note=" $(grep -m1 'error while loading' "$log")"
      if [[ -z "$SKIP_REASON" && ${s:-0} -gt 0 ]]; then
        SKIP_REASON="$(grep -m1 -A1 ': Skipped$' "$log" | tail -1 | cut -c1-80)"
      fi
      line "$(printf 'test %-22s rc=%-3s passed=%-3s failed=%-3s skipped=%-3s %3ss%s' "$name" "$rc" \
              "${p:-0}" "${f:-0}" "${s:-0}" "$(( $(date +%s) - t1 ))" "$note")"
      if ((rc != 0)); then
        fail "$name"
        grep -E '^\[  FAILED  \]|Failure|out of tolerance|Expected|Which is' "$log" | head -20
      fi
    done
    pack_logs
  fi

  STEP_LOG="$LOGDIR/bench_cuda_train_step.log"
  TORCH_LOG="$LOGDIR/pytorch_reference_step.log"
  if has_stage ops; then
    exe="$BUILD/tests/cuda/bench_cuda_ops"
    if [[ ! -x "$exe" ]]; then
      line "ops: bench_cuda_ops SKIPPED: ${OPS_REASON:-$(not_built)}"; skip bench_cuda_ops
    elif t=$(budget 150); ((t < MIN_STAGE)); then
      line "ops: NOT RUN (deadline)"; skip "bench_cuda_ops(deadline)"; fail deadline
    else
      t1=$(date +%s)
      run_timed "$t" "$LOGDIR/bench_cuda_ops.log" "${RUN_ENV[@]}" "$exe" --benchmark_counters_tabular=true \
        --benchmark_out="$LOGDIR/bench_cuda_ops.json" --benchmark_out_format=json
      rc=$?
      line "ops: bench_cuda_ops rc=$rc $(( $(date +%s) - t1 ))s$( ((rc == 124 || rc == 137)) && echo " TIMEOUT (killed after ${t}s)")"
      ((rc == 0)) || fail bench_cuda_ops
      if [[ -s "$LOGDIR/bench_cuda_ops.json" ]]; then
        # one line per benchmark: time, its rate counter, cuDNN's label, or the error
        "$PY" -c 'import json, sys
for b in json.load(open(sys.argv[1])).get("benchmarks", []):
    name = b.get("name", "?").replace("/manual_time", "").split("/min_time:")[0]
    if b.get("error_occurred"):
        print(("ops " + name + ": ERROR " + b.get("error_message", ""))[:160])
        continue
    rate = " ".join(k + "=%.4g" % b[k] for k in ("TFLOP/s", "GB/s", "Gsamples/s", "images/s") if k in b)
    label = " [" + b["label"] + "]" if b.get("label") else ""
    t = "%.4g %s" % (b.get("real_time", 0), b.get("time_unit", ""))
    print(("ops %s: %s %s%s" % (name, t, rate, label))[:200])' \
          "$LOGDIR/bench_cuda_ops.json" 2>/dev/null | while IFS= read -r l; do line "$l"; done
      fi
    fi
    pack_logs
  fi

  if has_stage step; then
    exe="$BUILD/tests/cuda/bench_cuda_train_step"
    if [[ ! -x "$exe" ]]; then
      line "step: bench_cuda_train_step SKIPPED: $(not_built)"; skip bench_cuda_train_step
      ((DRY)) || fail bench_cuda_train_step
    elif t=$(budget 300); ((t < MIN_STAGE)); then
      line "step: NOT RUN (deadline)"; skip "bench_cuda_train_step(deadline)"; fail deadline
    else
      t1=$(date +%s)
      run_timed "$t" "$STEP_LOG" "${RUN_ENV[@]}" "$exe" --steps "$STEPS" --precision "$PRECISION" \
        --json "$LOGDIR/bench_cuda_train_step.json"
      rc=$?
      line "step: bench_cuda_train_step --precision $PRECISION rc=$rc $(( $(date +%s) - t1 ))s$( ((rc == 124 || rc == 137)) && echo " TIMEOUT (killed after ${t}s)")"
      ((rc == 0)) || fail bench_cuda_train_step
      ((!DRY)) && grep -q '^SKIPPED' "$STEP_LOG" && fail bench_cuda_train_step-skipped
      grep -E '^(RESULT|SKIPPED)' "$STEP_LOG" | sed 's/^RESULT /step /' | while IFS= read -r l; do line "$l"; done
    fi
    pack_logs
  fi

  # value of key $3 on the "RESULT $1 ..." line of file $2 (empty when absent)
  result() {
    grep -E "^RESULT $1( |$)" "$2" 2>/dev/null | tail -1 | tr ' ' '\n' | grep -E "^$3=" | head -1 \
      | cut -d= -f2- | tr -d '"'
  }
  ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

  if has_stage torch; then
    script="$ROOT/tests/cuda/pytorch_reference_step.py"
    TPY=""  # the first Python that imports torch (PYTHON, python3, python, the system's)
    for cand in ${PYTHON:-} python3 python /usr/bin/python3; do
      if [[ -z "$TPY" ]] && command -v "$cand" > /dev/null && t=$(budget 60) && ((t >= MIN_STAGE)) \
         && timeout "$t" env LD_LIBRARY_PATH="$ORIG_LD" "$cand" -c 'import torch' > /dev/null 2>&1; then
        TPY="$cand"
      fi
    done
    if t=$(budget 240); ((t < MIN_STAGE)); then
      line "torch: NOT RUN (deadline)"; skip "pytorch(deadline)"; fail deadline
    elif [[ -z "$TPY" ]]; then
      line "torch: SKIPPED: no Python here imports torch (${PYTHON:-} python3 python /usr/bin/python3)"
      skip pytorch
      ((DRY)) || fail pytorch-missing
    elif ((DRY)); then  # the script's plumbing on a tiny CPU model
      run_timed "$(budget 120)" "$TORCH_LOG" "$TPY" "$script" --cpu-smoke
      rc=$?
      line "torch: --cpu-smoke rc=$rc: $(tail -1 "$TORCH_LOG" | cut -c1-120)"
      ((rc == 0)) || fail pytorch-cpu-smoke
    else
      B="$(result train_step_bf16 "$STEP_LOG" bf16_batch)"
      [[ -z "$B" ]] && B="$(result train_step_fp32 "$STEP_LOG" fp32_batch)"
      B="${B%%.*}"
      case "$PRECISION" in bf16) TP=bf16 ;; fp32) TP=tf32 ;; *) TP=bf16,tf32 ;; esac
      t1=$(date +%s)
      # PyTorch with the caller's library path: its wheels bring their own CUDA libraries.
      run_timed "$t" "$TORCH_LOG" env LD_LIBRARY_PATH="$ORIG_LD" "$TPY" "$script" --batch "${B:-256}" \
        --steps "$STEPS" --precision "$TP" --json "$LOGDIR/pytorch_reference_step.json"
      rc=$?
      line "torch: pytorch_reference_step.py --batch ${B:-256} --precision $TP rc=$rc $(( $(date +%s) - t1 ))s$( ((rc == 124 || rc == 137)) && echo " TIMEOUT (killed after ${t}s)")"
      ((rc == 0)) || fail pytorch
      grep -q '^SKIPPED' "$TORCH_LOG" && fail pytorch-skipped
      grep -E '^(RESULT|SKIPPED|torch )' "$TORCH_LOG" | sed 's/^RESULT /torch /' | while IFS= read -r l; do line "$l"; done
      for pr in bf16 fp32; do
        [[ $pr == bf16 ]] && tp=bf16 || tp=tf32
        r_ips="$(result "train_step_$pr" "$STEP_LOG" "${pr}_train_images_per_s")"
        r_smp="$(result "sample_cfg_$pr" "$STEP_LOG" "${pr}_sample_images_x_nfe_per_s")"
        p_ips="$(result "pytorch_train_$tp" "$TORCH_LOG" images_per_s)"
        p_smp="$(result "pytorch_sample_$tp" "$TORCH_LOG" images_x_steps_per_s)"
        [[ -z "$r_ips$p_ips" ]] && continue
        line "ratio redi $pr / PyTorch $tp: train $(ratio "$r_ips" "$p_ips") ($r_ips / $p_ips images/s), sampling $(ratio "$r_smp" "$p_smp") ($r_smp / $p_smp images*NFE/s)"
      done
    fi
    pack_logs
  fi

  # ---- 5. dry run: did the build use what the GPU machine will have, and nothing else?
  if ((DRY)); then
    bad=()
    e="$(cache Eigen3_DIR)"
    [[ "$e" == "$DEPS"/* ]] || bad+=("Eigen3_DIR=$e is not the prepared one")
    grep -q 'redi-devcheck dep GTest: prepared' "$LOGDIR/configure.log" || bad+=("GTest not from the prepared sources")
    if [[ -f "$DEPS/benchmark/CMakeLists.txt" ]]; then
      grep -q 'redi-devcheck dep benchmark: prepared' "$LOGDIR/configure.log" || bad+=("benchmark not from the prepared sources")
    else
      line "dry run: no prepared Google Benchmark: bench_cuda_ops would be skipped on the GPU machine"
    fi
    [[ "$CUDNN_LIB" == "$REDI_WHEEL_SITE"/nvidia/cudnn/lib/libcudnn.so.[0-9]* ]] \
      || bad+=("RediCUDNN_LIBRARY=$CUDNN_LIB is not the simulated wheel's")
    # every absolute path in build.ninja naming Eigen, gtest, benchmark or cuDNN must lie in the
    # prepared folder or the build folder (the simulated wheel)
    leak="$(grep -oE '[^ ]*(eigen3|libgtest|libbenchmark|libcudnn|cudnn\.h)[^ ]*' "$BUILD/build.ninja" 2>/dev/null \
            | sed -E 's/^-(I|isystem)//; s/^-L//' | grep '^/' | grep -v -e "^$DEPS/" -e "^$BUILD/" \
            | sort -u | tr '\n' ' ')"
    [[ -z "$leak" ]] || bad+=("system copies in build.ninja: $leak")
    exe="$BUILD/tests/cuda/test_cuda_device"
    if [[ -x "$exe" ]]; then
      so="$("${RUN_ENV[@]}" ldd "$exe" 2>/dev/null | grep -E 'libcudnn\.so' | head -1 | sed 's/^[[:space:]]*//')"
      if [[ -n "$so" && "$so" != *"$REDI_WHEEL_SITE"* ]]; then bad+=("test_cuda_device loads ${so}"); fi
      line "dry run: test_cuda_device loads ${so:-no libcudnn (linked as needed)}"
    fi
    if ((${#bad[@]})); then
      for b in "${bad[@]}"; do line "dry-run check FAILED: $b"; done
      fail dry-run-checks
    else
      line "dry run: prepared Eigen/GTest/benchmark and the wheel-layout cuDNN used; no system copy leaked"
    fi
  fi
  exit 0  # finalize (EXIT trap) decides the status
}

# The parent: on TERM/INT/HUP it stops the body (KILL: no stage starts after this, and its EXIT
# trap does not run) and the running stage (TERM to its `timeout`, which passes it on and sends
# KILL 10 s later), then writes the result line and the archive itself.
on_signal() {
  local sp i
  kill -KILL "$BODY" 2> /dev/null
  wait "$BODY" 2> /dev/null
  sp="$(cat "$LOGDIR/.stage_pid" 2> /dev/null)"
  [[ -n "$sp" ]] && kill -TERM "$sp" 2> /dev/null
  for ((i = 0; i < 15; ++i)); do
    [[ -n "$sp" ]] && kill -0 "$sp" 2> /dev/null || break
    sleep 1
  done
  line "signal $1 at $(el)s: stopped${sp:+ (stage process $sp killed)}"
  line "result: FAIL (interrupted by $1) in $(el)s (deadline ${DEADLINE}s)"
  pack_logs
  exit 1
}
body &
BODY=$!
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP
while :; do
  wait "$BODY"
  rc=$?
  kill -0 "$BODY" 2> /dev/null || break  # a wait cut short by a signal: the trap has run
done
exit "$rc"
