#!/usr/bin/env python3
"""Reference vectors for redi's DINOv2-with-registers (include/redi/nn/dinov2.hpp).

An independent PyTorch implementation of the published architecture (DINOv2 with registers as
in transformers' Dinov2WithRegistersModel / torch hub dinov2_vitb14_reg), written for this test
from the architecture description (not copied from either code base), run in float64 on
float32-representable random weights stored under the exact transformers names.

Writes, next to this script:
  tiny_dinov2.safetensors   the weights of a reduced model (width 16, 2 heads, depth 2, MLP 64,
                            4 registers, patch 14, the full 37x37 position table), metadata
                            num_attention_heads = 2
  dinov2_ref.safetensors    inputs and reference outputs:
      case_a_u8    [2, 3, 48, 48] uint8 images -> preprocessing as the authors' code
                   (x / 255, ImageNet mean/std, F.interpolate bicubic (no antialias,
                   align_corners=False) 48 -> 42: the 256 -> 224 ratio) -> case_a_pixels
                   [2, 3, 42, 42] -> model -> case_a_tokens [2, 9, 16] (a 3x3 grid);
                   case_a32_tokens: the same from the float32 rounding of case_a_pixels
      case_b_pixels [1, 3, 28, 70] normalised pixels -> case_b_tokens [1, 10, 16] (2x5 grid)
      case_c_tokens  case_a_pixels through the model with the legacy position-table resize
                   (scale_factor = (g + 0.1) / 37 instead of size = g)
      resize_in [2, 37, 37] -> resize_size16 (interpolate(size=(16, 16), bicubic, antialias)),
                   resize_legacy16 (scale_factor = 16.1 / 37), resize_up (size=(40, 45)),
                   resize_rect (size=(9, 23))
  tiny_dinov2_w8.safetensors / tiny_dinov2_w8.bin
                            a smaller model (width 8, depth 1, 2 registers, 3x3 table) saved both
                            ways: the .bin by torch.save (zip) as a Dinov2WithRegistersFor-
                            ImageClassification state_dict ("dinov2_with_registers." prefix plus
                            a "classifier" head), for the loader's prefix and .bin paths
  dinov2_base_names.txt     name and shape of every tensor of the full-size
                            facebook/dinov2-with-registers-base (from the reference module built
                            on the meta device: no weights)

Run: /usr/bin/python3 tests/data/dinov2/make_dinov2_ref.py   (torch >= 1.13, numpy)
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import st_write  # noqa: E402  (tests/data/st_write.py)

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def shapes(cfg):
    """The transformers state_dict of Dinov2WithRegistersModel: name -> shape, in file order."""
    D, G, p, C, R, Dm = cfg["width"], cfg["pos_grid"], cfg["patch"], cfg["channels"], cfg["registers"], cfg["mlp"]
    s = {
        "embeddings.cls_token": (1, 1, D),
        "embeddings.mask_token": (1, D),
        "embeddings.register_tokens": (1, R, D),
        "embeddings.position_embeddings": (1, 1 + G * G, D),
        "embeddings.patch_embeddings.projection.weight": (D, C, p, p),
        "embeddings.patch_embeddings.projection.bias": (D,),
    }
    for i in range(cfg["depth"]):
        b = f"encoder.layer.{i}."
        s[b + "norm1.weight"] = (D,)
        s[b + "norm1.bias"] = (D,)
        for n in ("query", "key", "value"):
            s[b + f"attention.attention.{n}.weight"] = (D, D)
            s[b + f"attention.attention.{n}.bias"] = (D,)
        s[b + "attention.output.dense.weight"] = (D, D)
        s[b + "attention.output.dense.bias"] = (D,)
        s[b + "layer_scale1.lambda1"] = (D,)
        s[b + "norm2.weight"] = (D,)
        s[b + "norm2.bias"] = (D,)
        s[b + "mlp.fc1.weight"] = (Dm, D)
        s[b + "mlp.fc1.bias"] = (Dm,)
        s[b + "mlp.fc2.weight"] = (D, Dm)
        s[b + "mlp.fc2.bias"] = (D,)
        s[b + "layer_scale2.lambda1"] = (D,)
    s["layernorm.weight"] = (D,)
    s["layernorm.bias"] = (D,)
    return s


def random_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    P = {}
    for name, shp in shapes(cfg).items():
        x = torch.randn(shp, generator=g, dtype=torch.float64)
        if name.endswith(("norm1.weight", "norm2.weight", "layernorm.weight")):
            x = 1.0 + 0.2 * x
        elif name.endswith("lambda1"):
            x = 0.6 + 0.3 * x  # LayerScale: clearly not 1, so a misused one shows
        elif name.endswith(("bias",)):
            x = 0.1 * x
        elif name.endswith(("cls_token", "register_tokens", "position_embeddings", "mask_token")):
            x = 0.5 * x
        else:  # matrices: fan-in scaled
            fan_in = int(np.prod(shp[1:]))
            x = x / np.sqrt(fan_in)
        P[name] = torch.tensor(x.numpy().astype(np.float32).astype(np.float64))
    return P


def resize_pos(table, G, gh, gw, offset):
    """table [1, G*G, D] -> [1, gh*gw, D] by antialiased bicubic interpolation."""
    D = table.shape[-1]
    t = table.reshape(1, G, G, D).permute(0, 3, 1, 2)
    if offset > 0:
        r = F.interpolate(t, scale_factor=((gh + offset) / G, (gw + offset) / G), mode="bicubic",
                          align_corners=False, antialias=True)
    else:
        r = F.interpolate(t, size=(gh, gw), mode="bicubic", align_corners=False, antialias=True)
    assert r.shape[-2:] == (gh, gw), r.shape
    return r.permute(0, 2, 3, 1).reshape(1, gh * gw, D)


def forward(P, cfg, x, offset=0.0):
    """Normalised pixels x [B, C, H, W] -> final-LayerNorm patch tokens [B, gh*gw, D]."""
    B = x.shape[0]
    D, p, R, G, Hh = cfg["width"], cfg["patch"], cfg["registers"], cfg["pos_grid"], cfg["heads"]
    hd = D // Hh
    eps = 1e-6
    e = F.conv2d(x, P["embeddings.patch_embeddings.projection.weight"],
                 P["embeddings.patch_embeddings.projection.bias"], stride=p)
    gh, gw = e.shape[-2:]
    e = e.flatten(2).transpose(1, 2)  # [B, P, D]
    pos = P["embeddings.position_embeddings"]
    cls = (P["embeddings.cls_token"] + pos[:, :1]).expand(B, -1, -1)
    patches = e + resize_pos(pos[:, 1:], G, gh, gw, offset)
    regs = P["embeddings.register_tokens"].expand(B, -1, -1)
    h = torch.cat([cls, regs, patches], dim=1)  # position added before the registers go in
    L = h.shape[1]
    for i in range(cfg["depth"]):
        b = f"encoder.layer.{i}."
        y = F.layer_norm(h, (D,), P[b + "norm1.weight"], P[b + "norm1.bias"], eps)

        def heads(n):
            w, bias = P[b + f"attention.attention.{n}.weight"], P[b + f"attention.attention.{n}.bias"]
            return F.linear(y, w, bias).reshape(B, L, Hh, hd).transpose(1, 2)

        q, k, v = heads("query"), heads("key"), heads("value")
        a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, L, D)
        a = F.linear(a, P[b + "attention.output.dense.weight"], P[b + "attention.output.dense.bias"])
        h = h + P[b + "layer_scale1.lambda1"] * a
        y = F.layer_norm(h, (D,), P[b + "norm2.weight"], P[b + "norm2.bias"], eps)
        m = F.linear(F.gelu(F.linear(y, P[b + "mlp.fc1.weight"], P[b + "mlp.fc1.bias"])),
                     P[b + "mlp.fc2.weight"], P[b + "mlp.fc2.bias"])
        h = h + P[b + "layer_scale2.lambda1"] * m
    out = F.layer_norm(h, (D,), P["layernorm.weight"], P["layernorm.bias"], eps)
    return out[:, 1 + R:]


def preprocess(u8, size):
    """The authors' DINOv2 input: uint8 / 255, ImageNet mean/std, bicubic resize (no antialias)."""
    x = u8.to(torch.float64) / 255.0
    x = (x - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)


def f32(t):
    return t.detach().numpy().astype(np.float32)


def f64(t):
    return t.detach().numpy().astype(np.float64)


def main():
    torch.manual_seed(0)
    cfg = dict(width=16, heads=2, depth=2, mlp=64, registers=4, patch=14, pos_grid=37, channels=3)
    P = random_weights(cfg, seed=1234)
    st_write.save_safetensors(os.path.join(HERE, "tiny_dinov2.safetensors"), {k: f32(v) for k, v in P.items()},
                     {"num_attention_heads": str(cfg["heads"]), "made_by": "tests/data/dinov2/make_dinov2_ref.py"})

    g = torch.Generator().manual_seed(7)
    u8 = torch.randint(0, 256, (2, 3, 48, 48), generator=g, dtype=torch.uint8)
    pix_a = preprocess(u8, 42)
    tok_a = forward(P, cfg, pix_a)
    pix_b = torch.tensor(torch.randn(1, 3, 28, 70, generator=g, dtype=torch.float64).numpy().astype(np.float32)
                         .astype(np.float64))
    tok_b = forward(P, cfg, pix_b)
    # legacy resize on the float32 rounding of case A's pixels (the C++ test feeds those)
    pix_a32 = torch.tensor(f32(pix_a).astype(np.float64))
    tok_c = forward(P, cfg, pix_a32, offset=0.1)
    tok_a32 = forward(P, cfg, pix_a32)

    rin = torch.tensor(torch.randn(1, 2, 37, 37, generator=g, dtype=torch.float64).numpy().astype(np.float32)
                       .astype(np.float64))
    aa = dict(mode="bicubic", align_corners=False, antialias=True)
    r16 = F.interpolate(rin, size=(16, 16), **aa)
    rl16 = F.interpolate(rin, scale_factor=(16.1 / 37, 16.1 / 37), **aa)
    rup = F.interpolate(rin, size=(40, 45), **aa)
    rrect = F.interpolate(rin, size=(9, 23), **aa)
    assert rl16.shape[-2:] == (16, 16)

    st_write.save_safetensors(os.path.join(HERE, "dinov2_ref.safetensors"), {
        "case_a_u8": u8.numpy(),
        "case_a_pixels": f32(pix_a),
        "case_a_tokens": f64(tok_a),
        "case_a32_tokens": f64(tok_a32),
        "case_b_pixels": f32(pix_b),
        "case_b_tokens": f64(tok_b),
        "case_c_tokens": f64(tok_c),
        "resize_in": f32(rin[0]),
        "resize_size16": f64(r16[0]),
        "resize_legacy16": f64(rl16[0]),
        "resize_up": f64(rup[0]),
        "resize_rect": f64(rrect[0]),
    }, {"torch": torch.__version__, "config": json.dumps(cfg)})

    small = dict(width=8, heads=2, depth=1, mlp=16, registers=2, patch=14, pos_grid=3, channels=3)
    Ps = random_weights(small, seed=99)
    st_write.save_safetensors(os.path.join(HERE, "tiny_dinov2_w8.safetensors"), {k: f32(v) for k, v in Ps.items()},
                     {"num_attention_heads": "2"})
    sd = {"dinov2_with_registers." + k: torch.tensor(f32(v)) for k, v in Ps.items()}
    sd["classifier.weight"] = torch.zeros(5, 16)
    sd["classifier.bias"] = torch.zeros(5)
    torch.save(sd, os.path.join(HERE, "tiny_dinov2_w8.bin"))

    base = dict(width=768, heads=12, depth=12, mlp=3072, registers=4, patch=14, pos_grid=37, channels=3)
    with open(os.path.join(HERE, "dinov2_base_names.txt"), "w") as f:
        f.write("# facebook/dinov2-with-registers-base (Dinov2WithRegistersModel) state_dict: name shape\n")
        total = 0
        for name, shp in shapes(base).items():
            t = torch.empty(shp, device="meta")
            total += t.numel()
            f.write(f"{name} {'x'.join(str(d) for d in t.shape)}\n")
        f.write(f"# total {total}\n")
    print("tokens a", tuple(tok_a.shape), "b", tuple(tok_b.shape), "max |a - c|", float((tok_a32 - tok_c).abs().max()))


if __name__ == "__main__":
    main()
