#!/usr/bin/env python3
"""Reference outputs of the FID Inception-v3 for tests/test_inception.cpp.

An independent PyTorch (float64) forward of torchvision's Inception3 in the FID variant of
pytorch-fid (avg pools without the padding in the count in Mixed_5b-d, Mixed_6b-e, Mixed_7b;
max pool in Mixed_7c; BatchNorm eps 1e-3, *not* folded here: F.batch_norm in eval mode), with
deterministic pseudo-random weights under the published state_dict names. The weights are not
committed (24 M values): both sides generate them with the same integer hash,

    seed(name) = FNV-1a 64 of the tensor name
    x = seed XOR (i * 0x9E3779B97F4A7C15)          (element i, uint64 wrap-around)
    x = splitmix64 finaliser(x);  v = (x >> 40) / 2^24 * 2 - 1   in [-1, 1), exact in float32
    conv.weight = f32(v * sqrt(6 / fan_in));  bn.weight = f32(1 + v / 4);  bn.bias = f32(v / 10)
    bn.running_mean = f32(v / 10);  bn.running_var = f32(1 + v / 2)
    fc.weight = f32(v * sqrt(3 / 2048));  fc.bias = f32(v / 10)

Inputs are committed uint8 images. Preprocessing as pytorch-fid, in float32: p / 255,
F.interpolate(bilinear, align_corners=False) to S, 2x - 1; then the network in float64.
The greyscale case also stores its whole network input (one channel, float32).
Outputs: pool3 [B, 2048]; spatial = Mixed_6d.branch1x1 output channels 0..6 flattened NHWC
(ADM's mixed_6/conv[..., :7]); logits = pool3 fc.weight^T (no bias, as ADM's IS).

Run from the repository root:  /usr/bin/python3 tests/data/inception/make_inception_ref.py
Writes tests/data/inception/inception_ref.safetensors and two small torch checkpoints for the
loader's error tests (partial_inception.pt: only Conv2d_1a_3x3; bad_shape_inception.pt: its conv
weight transposed).
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import st_write  # noqa: E402  (tests/data/st_write.py)

HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def hash_uniform(name, n):
    i = np.arange(n, dtype=np.uint64)
    x = np.uint64(fnv1a(name)) ^ (i * np.uint64(0x9E3779B97F4A7C15))
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(40)).astype(np.float64) / float(1 << 24) * 2.0 - 1.0


# ---- the architecture: (module path, in, out, (kh, kw), stride, (ph, pw)) for every BasicConv2d
def conv_specs():
    s = []
    add = lambda n, i, o, k, st=1, p=(0, 0): s.append((n, i, o, k if isinstance(k, tuple) else (k, k), st, p))
    add("Conv2d_1a_3x3", 3, 32, 3, 2)
    add("Conv2d_2a_3x3", 32, 32, 3)
    add("Conv2d_2b_3x3", 32, 64, 3, 1, (1, 1))
    add("Conv2d_3b_1x1", 64, 80, 1)
    add("Conv2d_4a_3x3", 80, 192, 3)
    c = 192
    for m, pf in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        add(m + ".branch1x1", c, 64, 1)
        add(m + ".branch5x5_1", c, 48, 1)
        add(m + ".branch5x5_2", 48, 64, 5, 1, (2, 2))
        add(m + ".branch3x3dbl_1", c, 64, 1)
        add(m + ".branch3x3dbl_2", 64, 96, 3, 1, (1, 1))
        add(m + ".branch3x3dbl_3", 96, 96, 3, 1, (1, 1))
        add(m + ".branch_pool", c, pf, 1)
        c = 224 + pf
    add("Mixed_6a.branch3x3", c, 384, 3, 2)
    add("Mixed_6a.branch3x3dbl_1", c, 64, 1)
    add("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 1, (1, 1))
    add("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 2)
    for m, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        add(m + ".branch1x1", 768, 192, 1)
        add(m + ".branch7x7_1", 768, c7, 1)
        add(m + ".branch7x7_2", c7, c7, (1, 7), 1, (0, 3))
        add(m + ".branch7x7_3", c7, 192, (7, 1), 1, (3, 0))
        add(m + ".branch7x7dbl_1", 768, c7, 1)
        add(m + ".branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0))
        add(m + ".branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3))
        add(m + ".branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0))
        add(m + ".branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3))
        add(m + ".branch_pool", 768, 192, 1)
    add("Mixed_7a.branch3x3_1", 768, 192, 1)
    add("Mixed_7a.branch3x3_2", 192, 320, 3, 2)
    add("Mixed_7a.branch7x7x3_1", 768, 192, 1)
    add("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3))
    add("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0))
    add("Mixed_7a.branch7x7x3_4", 192, 192, 3, 2)
    for m, c in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        add(m + ".branch1x1", c, 320, 1)
        add(m + ".branch3x3_1", c, 384, 1)
        add(m + ".branch3x3_2a", 384, 384, (1, 3), 1, (0, 1))
        add(m + ".branch3x3_2b", 384, 384, (3, 1), 1, (1, 0))
        add(m + ".branch3x3dbl_1", c, 448, 1)
        add(m + ".branch3x3dbl_2", 448, 384, 3, 1, (1, 1))
        add(m + ".branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1))
        add(m + ".branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0))
        add(m + ".branch_pool", c, 192, 1)
    return s


def make_weights():
    sd, geo = {}, {}
    f32 = lambda a: a.astype(np.float32)
    for n, i, o, (kh, kw), st, p in conv_specs():
        fan = i * kh * kw
        sd[n + ".conv.weight"] = f32(hash_uniform(n + ".conv.weight", o * fan) * math.sqrt(6.0 / fan)).reshape(o, i, kh, kw)
        sd[n + ".bn.weight"] = f32(1.0 + hash_uniform(n + ".bn.weight", o) / 4.0)
        sd[n + ".bn.bias"] = f32(hash_uniform(n + ".bn.bias", o) / 10.0)
        sd[n + ".bn.running_mean"] = f32(hash_uniform(n + ".bn.running_mean", o) / 10.0)
        sd[n + ".bn.running_var"] = f32(1.0 + hash_uniform(n + ".bn.running_var", o) / 2.0)
        geo[n] = (st, p)
    sd["fc.weight"] = f32(hash_uniform("fc.weight", 1008 * 2048) * math.sqrt(3.0 / 2048)).reshape(1008, 2048)
    sd["fc.bias"] = f32(hash_uniform("fc.bias", 1008) / 10.0)
    return sd, geo


class Net:
    def __init__(self, sd, geo):
        self.t = {k: torch.tensor(v, dtype=torch.float64) for k, v in sd.items()}
        self.geo = geo
        self.captured = None

    def conv(self, x, n):
        st, p = self.geo[n]
        y = F.conv2d(x, self.t[n + ".conv.weight"], stride=st, padding=p)
        y = F.batch_norm(y, self.t[n + ".bn.running_mean"], self.t[n + ".bn.running_var"], self.t[n + ".bn.weight"],
                         self.t[n + ".bn.bias"], training=False, eps=1e-3)
        return F.relu(y)

    def avg(self, x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def block_a(self, x, m):
        b1 = self.conv(x, m + ".branch1x1")
        b5 = self.conv(self.conv(x, m + ".branch5x5_1"), m + ".branch5x5_2")
        b3 = self.conv(self.conv(self.conv(x, m + ".branch3x3dbl_1"), m + ".branch3x3dbl_2"), m + ".branch3x3dbl_3")
        bp = self.conv(self.avg(x), m + ".branch_pool")
        return torch.cat([b1, b5, b3, bp], 1)

    def block_b(self, x, m):
        b3 = self.conv(x, m + ".branch3x3")
        bd = self.conv(self.conv(self.conv(x, m + ".branch3x3dbl_1"), m + ".branch3x3dbl_2"), m + ".branch3x3dbl_3")
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)

    def block_c(self, x, m):
        b1 = self.conv(x, m + ".branch1x1")
        if m == "Mixed_6d":
            self.captured = b1[:, :7].permute(0, 2, 3, 1).reshape(b1.shape[0], -1)
        b7 = x
        for k in ("_1", "_2", "_3"):
            b7 = self.conv(b7, m + ".branch7x7" + k)
        bd = x
        for k in ("_1", "_2", "_3", "_4", "_5"):
            bd = self.conv(bd, m + ".branch7x7dbl" + k)
        bp = self.conv(self.avg(x), m + ".branch_pool")
        return torch.cat([b1, b7, bd, bp], 1)

    def block_d(self, x, m):
        b3 = self.conv(self.conv(x, m + ".branch3x3_1"), m + ".branch3x3_2")
        b7 = x
        for k in ("_1", "_2", "_3", "_4"):
            b7 = self.conv(b7, m + ".branch7x7x3" + k)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)

    def block_e(self, x, m, maxpool):
        b1 = self.conv(x, m + ".branch1x1")
        b3 = self.conv(x, m + ".branch3x3_1")
        b3 = torch.cat([self.conv(b3, m + ".branch3x3_2a"), self.conv(b3, m + ".branch3x3_2b")], 1)
        bd = self.conv(self.conv(x, m + ".branch3x3dbl_1"), m + ".branch3x3dbl_2")
        bd = torch.cat([self.conv(bd, m + ".branch3x3dbl_3a"), self.conv(bd, m + ".branch3x3dbl_3b")], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if maxpool else self.avg(x)
        bp = self.conv(pooled, m + ".branch_pool")
        return torch.cat([b1, b3, bd, bp], 1)

    def forward(self, x):
        for n in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = self.conv(x, n)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.conv(self.conv(x, "Conv2d_3b_1x1"), "Conv2d_4a_3x3")
        x = F.max_pool2d(x, 3, stride=2)
        for m in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = self.block_a(x, m)
        x = self.block_b(x, "Mixed_6a")
        for m in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = self.block_c(x, m)
        x = self.block_d(x, "Mixed_7a")
        x = self.block_e(x, "Mixed_7b", False)
        x = self.block_e(x, "Mixed_7c", True)
        pool3 = x.mean(dim=(2, 3))
        logits = pool3 @ self.t["fc.weight"].T
        return pool3, self.captured, logits


def preprocess(u8, S):  # u8 [B, H, W, C] -> float64 [B, 3, S, S]
    x = torch.tensor(u8).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False)
    return (2 * x - 1).double()


def main():
    torch.set_num_threads(2)
    sd, geo = make_weights()
    net = Net(sd, geo)
    rng = np.random.default_rng(13)
    rgb = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(1, 28, 28, 1), dtype=np.uint8)
    out = {"rgb": rgb, "grey": grey}
    cases = {"s107": (rgb, 107), "s299": (rgb[:1], 299), "grey80": (grey, 80)}
    with torch.no_grad():
        for key, (imgs, S) in cases.items():
            x = preprocess(imgs, S)
            pool3, spatial, logits = net.forward(x)
            out[key + ".input_sum"] = x.sum(dim=(2, 3)).numpy()
            if key == "grey80":  # the whole input (its 3 channels are equal): float32, exact
                out[key + ".input"] = x[0, 0].float().numpy()
            out[key + ".pool3"] = pool3.numpy()
            out[key + ".spatial"] = spatial.numpy()
            out[key + ".logits"] = logits.numpy()
            print(key, "pool3 mean %.4f max %.4f" % (pool3.mean(), pool3.max()), "spatial", tuple(spatial.shape),
                  "logits std %.4f" % logits.std())
    st_write.save_safetensors(os.path.join(HERE, "inception_ref.safetensors"), out,
                     {"about": "make_inception_ref.py: FID Inception-v3, hashed weights, float64 reference"})
    part = {k: torch.tensor(v) for k, v in sd.items() if k.startswith("Conv2d_1a_3x3.")}
    part["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    torch.save(part, os.path.join(HERE, "partial_inception.pt"))
    bad = dict(part)
    bad["Conv2d_1a_3x3.conv.weight"] = part["Conv2d_1a_3x3.conv.weight"].permute(1, 0, 2, 3).contiguous()
    torch.save(bad, os.path.join(HERE, "bad_shape_inception.pt"))


if __name__ == "__main__":
    main()
