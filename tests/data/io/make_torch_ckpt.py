#!/usr/bin/env python3
"""Writes tests/data/io/tiny_torch_ckpt.pt, a small real torch.save checkpoint for
tests/test_io_torch.cpp. Values are deterministic (no RNG), so the test checks them exactly.

Run with any PyTorch >= 1.6 (made with Debian's python3-torch 1.13):
    python3 tests/data/io/make_torch_ckpt.py
"""
import argparse
import collections
import os

import torch


def ramp(*shape, scale=0.25, shift=-0.5, dtype=torch.float32):
    n = 1
    for s in shape:
        n *= s
    return (torch.arange(n, dtype=torch.float64) * scale + shift).reshape(shape).to(dtype)


model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
with torch.no_grad():
    model[0].weight.copy_(ramp(2, 3))
    model[0].bias.copy_(torch.tensor([1.5, -2.0]))
    model[1].weight.copy_(torch.tensor([1.0, 0.5]))
    model[1].bias.copy_(torch.tensor([0.0, 0.125]))
sd = model.state_dict()  # an OrderedDict with a _metadata attribute (BUILD)
ema = collections.OrderedDict((k, v * 2) for k, v in sd.items())

base = ramp(4, 3, scale=1.0, shift=0.0)
extra = {
    "f16": ramp(2, 2, dtype=torch.float16),
    "bf16": ramp(3, dtype=torch.bfloat16),
    "f64": ramp(2, scale=1.0 / 3, shift=0.0, dtype=torch.float64),
    "i64": torch.tensor([0, -1, 2**40], dtype=torch.int64),
    "i32": torch.tensor([7, -7], dtype=torch.int32),
    "u8": torch.tensor([0, 255, 3], dtype=torch.uint8),
    "flag": torch.tensor([True, False]),
    "transposed": base.t(),    # strides (1, 3), shares base's storage
    "sliced": base[1:, 1],     # storage offset 4, stride (3,)
    "base": base,
    "scalar": torch.tensor(3.5),
    "param": torch.nn.Parameter(ramp(2, scale=1.0, shift=10.0)),  # _rebuild_parameter
}
ckpt = {
    "model": sd,
    "ema": ema,
    "extra": extra,
    "steps": 7,
    "lr": 1e-4,
    "args": argparse.Namespace(model="SiT-XL/2", seed=0),  # a global outside the allow-list
    "misc": [1.5, True, None, "text", (1, 2)],
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_torch_ckpt.pt")
torch.save(ckpt, out)
print(out, os.path.getsize(out), "bytes")
