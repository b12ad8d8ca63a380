#!/usr/bin/env python3
"""redi's DINOv2-B/14-reg CPU forward vs the PyTorch peer, in one script, same thread count.

Runs build/benchmarks/bench_dinov2 (Google Benchmark, images/s) and times the PyTorch reference
of tests/data/dinov2/make_dinov2_ref.py (the independent implementation of the published
architecture; float32, random weights, eager attention as transformers' default 'eager' path,
torch.no_grad) at the same batch and depth, alternating the two --rounds times (the median ratio
is the figure: on a shared machine single runs swing by 2x), and prints the ratios redi / PyTorch.

  python3 benchmarks/dinov2_vs_torch.py BENCH_BINARY [--threads 2] [--batch 4] [--depth 12] [--rounds 3]
                                        [--clock wall|cpu] [--baseline OTHER_BUILD/benchmarks/bench_dinov2]
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # read when the OpenMP runtime loads (with torch)
# torch's BLAS (Debian: OpenBLAS, pthread build) reads its thread count when it loads, not from
# torch.set_num_threads: without this, a "1-thread" PyTorch peer runs its matmuls on one BLAS
# thread per core, oversubscribed on a shared machine (measured here: up to 5x slower).
_t = [sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--threads"]
os.environ["OPENBLAS_NUM_THREADS"] = _t[-1] if _t else "2"
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "dinov2"))
import make_dinov2_ref as ref  # noqa: E402


def torch_images_per_s(batch, depth, threads, clock, min_time=4.0):
    torch.set_num_threads(threads)
    cfg = dict(width=768, heads=12, depth=depth, mlp=3072, registers=4, patch=14, pos_grid=37, channels=3)
    g = torch.Generator().manual_seed(0)
    P = {}
    for name, shp in ref.shapes(cfg).items():
        x = torch.randn(shp, generator=g) * 0.02
        if name.endswith(("norm1.weight", "norm2.weight", "layernorm.weight", "lambda1")):
            x = x + 1.0
        P[name] = x
    x = torch.randn(batch, 3, 224, 224, generator=g)
    with torch.no_grad():
        ref.forward(P, cfg, x)  # warm-up
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            out = ref.forward(P, cfg, x)
            n += 1
            el = time.perf_counter() - t0
            if el >= min_time and n >= 2:
                break
        cpu = time.process_time() - c0  # every thread of the process
    assert out.shape == (batch, 256, 768)
    return batch * n / (cpu if clock == "cpu" else el)


def redi_images_per_s(binary, batch, depth, threads, clock):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive")
    r = subprocess.run([binary, f"--benchmark_filter=BM_dinov2_forward/{batch}/{depth}/", "--benchmark_format=json"],
                       env=env, check=True, capture_output=True, text=True)
    runs = [b for b in json.loads(r.stdout)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    if not runs:
        sys.exit(f"bench_dinov2 has no BM_dinov2_forward/{batch}/{depth} (registered: 4/12, 4/2, 1/12)")
    b = runs[0]
    if clock == "cpu":  # cpu_time per iteration, all threads (MeasureProcessCPUTime), in time_unit
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        return batch / (b["cpu_time"] * unit)
    return b["images_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3, help="alternating redi / PyTorch measurements (shared machines)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="images per wall second, or per CPU second of all the process's threads (robust on a "
                         "loaded machine; OpenMP waits passively so idle threads do not count)")
    ap.add_argument("--baseline", help="a second bench_dinov2 (another commit's build) timed in the same rounds")
    a = ap.parse_args()
    ratios, bratios = [], []
    for r in range(a.rounds):
        redi = redi_images_per_s(a.binary, a.batch, a.depth, a.threads, a.clock)
        base = redi_images_per_s(a.baseline, a.batch, a.depth, a.threads, a.clock) if a.baseline else None
        pt = torch_images_per_s(a.batch, a.depth, a.threads, a.clock)
        ratios.append(redi / pt)
        unit = "img/CPU-s" if a.clock == "cpu" else "img/s"
        extra = f", baseline {base:.3f} {unit} (ratio {base / pt:.2f}x)" if base else ""
        if base:
            bratios.append(base / pt)
        print(f"round {r + 1}: redi {redi:.3f} {unit}, PyTorch {pt:.3f} {unit}, ratio {redi / pt:.2f}x{extra}", flush=True)
    for name, rs in (("redi", ratios), ("baseline", bratios)):
        if not rs:
            continue
        rs.sort()
        print(f"DINOv2-B/14-reg forward, 224 px, batch {a.batch}, depth {a.depth}, {a.threads} threads, {a.clock} clock, "
              f"PyTorch {torch.__version__}: {name} median ratio /PyTorch {rs[len(rs) // 2]:.2f}x "
              f"(min {rs[0]:.2f}, max {rs[-1]:.2f}, {a.rounds} rounds)")


if __name__ == "__main__":
    main()
