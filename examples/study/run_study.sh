#!/usr/bin/env bash
# The small-scale study of docs/results.md: when does ReDi beat the plain model on Fashion-MNIST
# at the quickstart's budget? Every run is one redi_quickstart call (its config and results in
# <run>/eval.json, judge included), every sample file is then scored by redi_judge:
#   * selection stages (defect, sweep) against the validation split (--eval-split val);
#   * the final stage's samples once more against the test split (<run>/judge_test.json),
#     the only use of the test split.
# Runs that exist (eval.json present) are skipped, so the script resumes after an interruption.
#
#   bash examples/study/run_study.sh [--stage defect|sweep|final|all] [--out runs/study]
#                                    [--build DIR] [--threads N] [--seeds "0 1 2"]
#   python3 examples/study/aggregate.py runs/study > runs/study/table.md
#
# Cost on the 2-core reference machine (1 thread per run, two runs side by side): ~35 min per
# training run, ~3-5 min per sampling-only run (--from). defect: 4 runs, sweep: 8, final: 3 trainings +
# 1 sampling per seed.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=all out=runs/study build=build-quickstart threads=1 seeds="0 1 2"
while (($#)); do
  case $1 in
    --stage) stage=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) echo "run_study.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
qs=$build/examples/quickstart/redi_quickstart
judge=$build/examples/judge/redi_judge
for b in "$qs" "$judge"; do
  [[ -x $b ]] || { echo "run_study.sh: $b missing; build it: cmake --build $build --target redi_quickstart redi_judge" >&2; exit 1; }
done
mkdir -p "$out"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# run NAME [quickstart flags...]: one training (or --from sampling) run into $out/NAME
run() {
  local name=$1; shift
  if [[ -f $out/$name/eval.json ]]; then echo "[study] $name: done, skipped"; return; fi
  echo "[study] $name: redi_quickstart $*"
  "$qs" --minutes 100000 --threads "$threads" --eval-split val --out "$out/$name" "$@" > "$out/$name.log" 2>&1 ||
    { echo "[study] $name failed, see $out/$name.log" >&2; return 1; }
}
# test NAME: the final, test-split judgement of a run's samples
test_split() {
  local name=$1
  [[ -f $out/$name/judge_test.json ]] || "$judge" eval "$out/$name/samples.npz" --ref test --threads "$threads" \
    --json "$out/$name/judge_test.json" > "$out/$name/judge_test.txt"
}

tok=(--feature-grid token)
if [[ $stage == defect || $stage == all ]]; then
  # 0. rule out a defect: features on the image grid (the old default) with the oracle, the
  #    same with lambda_z = 0, p_drop = 0 (z only an extra input), and the plain baseline.
  run defect_plain_cond --plain --conditional --eval-every 500
  run defect_redi_image_grid --conditional --encoder supervised --feature-grid image --oracle
  run defect_lam0_image_grid --conditional --encoder supervised --feature-grid image --lambda-z 0 --p-drop 0 --oracle
  run defect_redi_token_grid --conditional --encoder supervised "${tok[@]}" --oracle --eval-every 500
fi
if [[ $stage == sweep || $stage == all ]]; then
  # 1. the unconditional setting (RG is its only guidance) and its RG scale, chosen on val
  run sweep_plain_uncond --plain --unconditional --eval-every 500
  run sweep_redi_uncond "${tok[@]}" --unconditional --rg 1.1 --encoder supervised --eval-every 500
  for g in 1.5 2.0; do
    run "sweep_redi_uncond_rg$g" "${tok[@]}" --unconditional --rg "$g" --encoder supervised --from "$out/sweep_redi_uncond/checkpoint.safetensors"
  done
  run sweep_redi_uncond_rgnone "${tok[@]}" --unconditional --guidance none --encoder supervised --from "$out/sweep_redi_uncond/checkpoint.safetensors"
  # 2. how much of the feature signal to learn, and how many components
  run sweep_redi_uncond_lam025 "${tok[@]}" --unconditional --rg 1.5 --encoder supervised --lambda-z 0.25
  run sweep_redi_uncond_r4 "${tok[@]}" --unconditional --rg 1.5 --encoder supervised --r 4
  # 3. the self-supervised encoder (data/encoders/, docs/encoder.md) as the feature source
  run sweep_redi_uncond_dino "${tok[@]}" --unconditional --rg 1.5 --encoder dino
fi
if [[ $stage == final || $stage == all ]]; then
  # 4. the final comparison, unconditional: plain vs ReDi + RG (and the same ReDi without RG)
  for s in $seeds; do
    run "final_plain_uncond_s$s" --plain --unconditional --seed "$s"
    run "final_redi_uncond_s$s" "${tok[@]}" --unconditional --rg 1.5 --encoder supervised --seed "$s"
    run "final_redi_uncond_norg_s$s" "${tok[@]}" --unconditional --guidance none --encoder supervised --seed "$s" \
      --from "$out/final_redi_uncond_s$s/checkpoint.safetensors"
    run "final_redi_uncond_dino_s$s" "${tok[@]}" --unconditional --rg 1.5 --encoder dino --seed "$s"
    for n in plain_uncond redi_uncond redi_uncond_norg redi_uncond_dino; do test_split "final_${n}_s$s"; done
  done
fi
echo "[study] done: python3 examples/study/aggregate.py $out"
