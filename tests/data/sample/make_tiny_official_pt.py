#!/usr/bin/env python3
"""A tiny ReDi/SiT checkpoint in the official training-checkpoint format, for redi_sample's
tests (examples/sample): torch.save({"model": sd, "ema": sd_ema, "opt": {...}, "args": Namespace})
with the official state_dict names and shapes of the public DiT / SiT / ReDi model code
(tests/data/parity/make_parity_fixtures.py: state_dict_shapes, pos_table). Run from this folder:

    /usr/bin/python3 make_tiny_official_pt.py

Model: SiT (flow matching) with ReDi Merged fusion, latent grid 8x8 with 4 channels (the tiny
test VAE of tests/data/vae decodes it to 32x32 RGB), r = 3 feature channels, patch 2, width 16,
2 heads (not a preset: pass --heads 2), depth 2, 5 classes. "model" and "ema" hold different
random weights, so a reader that picks the wrong one is caught.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from make_parity_fixtures import pos_table, state_dict_shapes  # noqa: E402

CFG = {"input_size": 8, "patch": 2, "Cx": 4, "r": 3, "width": 16, "heads": 2, "depth": 2, "classes": 5,
       "fusion": "Merged", "learn_sigma": False}


def random_sd(seed):
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shape in state_dict_shapes(CFG):
        fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1) if len(shape) > 1 else 1
        std = 0.5 / math.sqrt(fan_in) if len(shape) > 1 else 0.05
        sd[k] = torch.tensor(rng.normal(0.0, std, size=shape), dtype=torch.float32)
    sd["pos_embed"] = pos_table(CFG["input_size"] // CFG["patch"], CFG["width"]).to(torch.float32)[None]
    return sd


def main():
    model, ema = random_sd(1), random_sd(2)
    opt = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}
    args = argparse.Namespace(model="SiT-tiny/2", num_classes=CFG["classes"])
    torch.save({"model": model, "ema": ema, "opt": opt, "args": args}, "tiny_sit_official.pt")
    print("tiny_sit_official.pt:", len(ema), "tensors,", sum(v.numel() for v in ema.values()), "values")


if __name__ == "__main__":
    main()
