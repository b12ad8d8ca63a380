#!/usr/bin/env python3
"""redi's SD-VAE (benchmarks/bench_vae.cpp) against a PyTorch peer in the same run, same thread
count: the AutoencoderKL written from the published architecture in plain torch
(tests/data/vae/make_vae_ref.py's Ref, in float32; nn.functional convolutions, GroupNorm,
nearest upsampling and matmul/softmax attention: the ops diffusers calls). Prints images/s of
both (each the best of 5 single-image runs, 3 at full width: the machine is shared, the best
run is the least disturbed) and the ratio redi / PyTorch for encode and decode at 256x256, batch 1.

    OMP_NUM_THREADS=2 /usr/bin/python3 benchmarks/vae_vs_pytorch.py build/benchmarks/bench_vae [--full]

Without --full only the quarter-width network (32/64/128/128) is timed (the full width takes
seconds per image on 2 cores). Needs torch (1.13 tested) and numpy; not part of CI.
"""
import json
import math
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "vae"))
from make_vae_ref import CFG, Ref, layout  # noqa: E402


def torch_rate(cfg, what, reps):
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
    fn = (lambda: ref.encode(x)) if what == "encode" else (lambda: ref.decode(z))
    with torch.no_grad():
        fn()  # warm-up
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    return 1.0 / best


def main():
    exe = sys.argv[1]
    full = "--full" in sys.argv
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    reps = 3 if full else 5
    out = subprocess.run([exe, "--benchmark_format=json", "--benchmark_filter=" + ("." if full else "/1/1/"),
                          "--benchmark_repetitions=%d" % reps, "--benchmark_min_time=0"],
                         check=True, capture_output=True, text=True).stdout
    rows = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        key = ("encode" if "encode" in b["name"] else "decode", b["label"])
        rows[key] = max(rows.get(key, 0.0), b["images/s"])  # best of the repetitions
    print("threads", threads, "(torch %s, %d intra-op threads)" % (torch.__version__, torch.get_num_threads()))
    for (what, width), redi_rate in sorted(rows.items()):
        cfg = dict(CFG, norm_groups=32, block_out_channels=[128, 256, 512, 512] if width == "full" else [32, 64, 128, 128])
        pt = torch_rate(cfg, what, 3 if width == "full" else 5)  # best of as many runs
        print("%-6s %-7s 256px  redi %8.3f img/s   pytorch %8.3f img/s   ratio %.2fx" % (what, width, redi_rate, pt, redi_rate / pt))


if __name__ == "__main__":
    main()
