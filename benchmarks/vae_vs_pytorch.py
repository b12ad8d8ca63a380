#!/usr/bin/env python3
"""redi's SD-VAE (benchmarks/bench_vae.cpp) against a PyTorch peer in the same run, same thread
count: the AutoencoderKL written from the published architecture in plain torch
(tests/data/vae/make_vae_ref.py's Ref, in float32; nn.functional convolutions, GroupNorm,
nearest upsampling and matmul/softmax attention: the ops diffusers calls). Prints images/s of
both and the ratio: 5 rounds (3 at full width), each one redi run (a bench_vae process, one
timed image after a warm-up) then one PyTorch run, best of the rounds on each side (the
machine is shared: the best run is the least disturbed) and the per-round ratios redi / PyTorch;
encode and decode at 256x256, batch 1.

    OMP_NUM_THREADS=2 /usr/bin/python3 benchmarks/vae_vs_pytorch.py build/benchmarks/bench_vae [--full | --only-full]
                                      [--baseline OTHER_BUILD/benchmarks/bench_vae]

Without --full only the quarter-width network (32/64/128/128) is timed (the full width takes
seconds per image on 2 cores); --only-full times the full width alone. --baseline times a second
bench_vae (another commit's build) in the same rounds, right after redi's, and prints its ratios
too (before/after comparisons under the same load). Needs torch (1.13 tested) and numpy; not part of CI.
"""
import json
import math
import os
import subprocess
import sys
import time

# torch's BLAS (Debian: OpenBLAS, pthread build) takes its thread count when it loads, not from
# torch.set_num_threads: the same count as the OpenMP side, or a 1-thread peer is oversubscribed.
os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "2")
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "vae"))
from make_vae_ref import CFG, Ref, layout  # noqa: E402


def torch_model(cfg):
    g = torch.Generator().manual_seed(0)
    sd = {}
    for name, shape in layout(cfg):
        if len(shape) == 1:
            sd[name] = torch.ones(shape) if ("norm" in name and name.endswith(".weight")) else torch.zeros(shape)
        else:
            sd[name] = torch.randn(shape, generator=g) / math.sqrt(int(torch.tensor(shape[1:]).prod()))
    ref = Ref(cfg, sd)
    x = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1
    z = (torch.rand(1, 4, 32, 32, generator=g) * 2 - 1) * 0.18215 * 3
    return {"encode": lambda: ref.encode(x), "decode": lambda: ref.decode(z)}


def torch_once(fn):
    with torch.no_grad():
        t0 = time.perf_counter()
        fn()
        return 1.0 / (time.perf_counter() - t0)


def redi_once(exe, what, width):
    arg = "1" if width == "quarter" else "0"
    out = subprocess.run([exe, "--benchmark_format=json", "--benchmark_min_time=0",
                          "--benchmark_filter=BM_vae_%s_256/%s/1/" % (what, arg)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["benchmarks"][0]["images/s"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    exe = args[0]
    base = None  # --baseline EXE: a second bench_vae (e.g. built from another commit) timed in the same rounds
    for i, a in enumerate(sys.argv):
        if a == "--baseline":
            base = sys.argv[i + 1]
            args.remove(base)
    full = "--full" in sys.argv or "--only-full" in sys.argv
    widths = ["full"] if "--only-full" in sys.argv else (["quarter", "full"] if full else ["quarter"])
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    print("threads", threads, "(torch %s, %d intra-op threads)" % (torch.__version__, torch.get_num_threads()))
    for width in widths:
        cfg = dict(CFG, norm_groups=32, block_out_channels=[128, 256, 512, 512] if width == "full" else [32, 64, 128, 128])
        fns = torch_model(cfg)
        rounds = 3 if width == "full" else 5
        for what in ("encode", "decode"):
            with torch.no_grad():
                fns[what]()  # warm-up
            r, t, b = [], [], []
            for _ in range(rounds):  # interleaved, so both sides see the same load
                r.append(redi_once(exe, what, width))
                if base:
                    b.append(redi_once(base, what, width))
                t.append(torch_once(fns[what]))
            med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
            rr = [a / c for a, c in zip(r, t)]
            print("%-6s %-7s 256px  redi %8.3f img/s   pytorch %8.3f img/s   ratio %.2fx (best of %d interleaved; "
                  "median per-round ratio %.2fx; per round %s)" % (what, width, max(r), max(t), max(r) / max(t), rounds,
                                                                   med(rr), " ".join("%.2f" % x for x in rr)))
            if base:
                rb = [a / c for a, c in zip(b, t)]
                print("%-6s %-7s 256px  baseline %8.3f img/s   ratio %.2fx (best/best; median per-round %.2fx; per "
                      "round %s)" % (what, width, max(b), max(b) / max(t), med(rb), " ".join("%.2f" % x for x in rb)),
                      flush=True)


if __name__ == "__main__":
    main()
