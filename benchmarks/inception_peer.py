#!/usr/bin/env python3
"""The PyTorch peer of bench_inception's BM_InceptionForward: the FID Inception-v3 at 299 in
float32 under torch.no_grad(), as torchvision/pytorch-fid run it (eval-mode BatchNorm after
every convolution; pytorch-fid's pool variants), with the synthetic weights of
tests/data/inception/make_inception_ref.py (same architecture code, cast to float32).
Prints one line: "torch images/s <rate> batch <B> threads <T>".
  python3 benchmarks/inception_peer.py --threads 2 --batch 8 --seconds 20
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "inception"))
import make_inception_ref as ref  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sd, geo = ref.make_weights()
    net = ref.Net(sd, geo)
    net.t = {k: v.float() for k, v in net.t.items()}
    x = torch.rand(a.batch, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        net.forward(x)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds or n < 2:
            net.forward(x)
            n += 1
        dt = time.perf_counter() - t0
    print("torch images/s %.3f batch %d threads %d" % (n * a.batch / dt, a.batch, a.threads))


if __name__ == "__main__":
    main()
