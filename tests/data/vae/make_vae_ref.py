#!/usr/bin/env python3
"""Reference vectors for redi's SD-VAE (include/redi/nn/vae.hpp), written from the published
architecture of diffusers' AutoencoderKL (the `stabilityai/sd-vae-ft-ema` layout) in plain torch;
diffusers is not used. Run with /usr/bin/python3 (torch 1.13, numpy) from this folder:

    python3 make_vae_ref.py

Writes (all small; CI only reads them):
  tiny_vae.safetensors   random weights at reduced width under the diffusers names (current
                         attention names to_q/to_k/to_v/to_out.0), stored as F16; every value is
                         exactly representable in fp16, so the fp32 model sees the same numbers
  tiny_vae_legacy.bin    the same weights as a torch.save zip (diffusion_pytorch_model.bin style)
                         with the older attention names query/key/value/proj_attn, fp16
  tiny_vae_ref.npz       images [2,3,32,32], moments [2,8,8,8] (quant_conv output), mean,
                         logvar (clamped) [2,4,8,8], latents [2,4,8,8] (scaled), decoded
                         [2,3,32,32] (decoder output for those latents), all float64 from a float64
                         forward pass of the float32-representable inputs
Config (metadata "config" of the safetensors): block_out_channels 8/16/16, layers_per_block 2,
latent 4, GroupNorm 4 groups eps 1e-6, scaling factor 0.18215 (three blocks: two downsamplers,
two upsamplers; shortcut convolutions where widths change).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import st_write  # noqa: E402  (tests/data/st_write.py)

CFG = dict(block_out_channels=[8, 16, 16], layers_per_block=2, latent_channels=4, norm_groups=4,
           norm_eps=1e-6, scaling_factor=0.18215, in_channels=3, out_channels=3)


# ---------------------------------------------------------------- parameter names and shapes
def layout(c):
    """(name, shape) of every tensor, diffusers names (current attention naming)."""
    out = []
    conv = lambda n, co, ci, k: out.extend([(n + ".weight", (co, ci, k, k)), (n + ".bias", (co,))])
    norm = lambda n, ch: out.extend([(n + ".weight", (ch,)), (n + ".bias", (ch,))])

    def resnet(n, ci, co):
        norm(n + ".norm1", ci); conv(n + ".conv1", co, ci, 3)
        norm(n + ".norm2", co); conv(n + ".conv2", co, co, 3)
        if ci != co:
            conv(n + ".conv_shortcut", co, ci, 1)

    def attn(n, ch):
        norm(n + ".group_norm", ch)
        for p in ("to_q", "to_k", "to_v", "to_out.0"):
            out.extend([(f"{n}.{p}.weight", (ch, ch)), (f"{n}.{p}.bias", (ch,))])

    bo, nb, L, lc = c["block_out_channels"], len(c["block_out_channels"]), c["layers_per_block"], c["latent_channels"]
    top = bo[-1]
    conv("encoder.conv_in", bo[0], c["in_channels"], 3)
    ch = bo[0]
    for i in range(nb):
        for j in range(L):
            resnet(f"encoder.down_blocks.{i}.resnets.{j}", ch, bo[i]); ch = bo[i]
        if i + 1 < nb:
            conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", ch, ch, 3)
    resnet("encoder.mid_block.resnets.0", top, top); attn("encoder.mid_block.attentions.0", top)
    resnet("encoder.mid_block.resnets.1", top, top)
    norm("encoder.conv_norm_out", top); conv("encoder.conv_out", 2 * lc, top, 3)
    conv("quant_conv", 2 * lc, 2 * lc, 1); conv("post_quant_conv", lc, lc, 1)
    conv("decoder.conv_in", top, lc, 3)
    resnet("decoder.mid_block.resnets.0", top, top); attn("decoder.mid_block.attentions.0", top)
    resnet("decoder.mid_block.resnets.1", top, top)
    ch = top
    for i in range(nb):
        o = bo[nb - 1 - i]
        for j in range(L + 1):
            resnet(f"decoder.up_blocks.{i}.resnets.{j}", ch, o); ch = o
        if i + 1 < nb:
            conv(f"decoder.up_blocks.{i}.upsamplers.0.conv", ch, ch, 3)
    norm("decoder.conv_norm_out", bo[0]); conv("decoder.conv_out", c["out_channels"], bo[0], 3)
    return out


# ---------------------------------------------------------------- the network (float64)
class Ref:
    def __init__(self, c, sd):
        self.c, self.sd = c, sd

    def gn(self, n, x, silu):
        y = F.group_norm(x, self.c["norm_groups"], self.sd[n + ".weight"], self.sd[n + ".bias"], self.c["norm_eps"])
        return F.silu(y) if silu else y

    def conv(self, n, x, stride=1, pad=None):
        w = self.sd[n + ".weight"]
        p = w.shape[-1] // 2 if pad is None else pad
        return F.conv2d(x, w, self.sd[n + ".bias"], stride=stride, padding=p)

    def resnet(self, n, x):
        h = self.conv(n + ".conv1", self.gn(n + ".norm1", x, True))
        h = self.conv(n + ".conv2", self.gn(n + ".norm2", h, True))
        if n + ".conv_shortcut.weight" in self.sd:
            x = self.conv(n + ".conv_shortcut", x)
        return x + h

    def attention(self, n, x):
        B, C, H, W = x.shape
        h = self.gn(n + ".group_norm", x, False).reshape(B, C, H * W).transpose(1, 2)  # [B, L, C]
        lin = lambda p, t: F.linear(t, self.sd[f"{n}.{p}.weight"], self.sd[f"{n}.{p}.bias"])
        q, k, v = lin("to_q", h), lin("to_k", h), lin("to_v", h)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), dim=-1) @ v
        o = lin("to_out.0", a).transpose(1, 2).reshape(B, C, H, W)
        return x + o

    def mid(self, p, x):
        x = self.resnet(p + ".resnets.0", x)
        x = self.attention(p + ".attentions.0", x)
        return self.resnet(p + ".resnets.1", x)

    def encode(self, x):
        c = self.c
        nb = len(c["block_out_channels"])
        h = self.conv("encoder.conv_in", x)
        for i in range(nb):
            for j in range(c["layers_per_block"]):
                h = self.resnet(f"encoder.down_blocks.{i}.resnets.{j}", h)
            if i + 1 < nb:  # diffusers Downsample2D(padding=0): pad (0, 1, 0, 1), 3x3 stride 2
                h = self.conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", F.pad(h, (0, 1, 0, 1)), 2, 0)
        h = self.mid("encoder.mid_block", h)
        h = self.conv("encoder.conv_out", self.gn("encoder.conv_norm_out", h, True))
        return self.conv("quant_conv", h)

    def decode(self, z):
        c = self.c
        nb = len(c["block_out_channels"])
        h = self.conv("post_quant_conv", z / c["scaling_factor"])
        h = self.conv("decoder.conv_in", h)
        h = self.mid("decoder.mid_block", h)
        for i in range(nb):
            for j in range(c["layers_per_block"] + 1):
                h = self.resnet(f"decoder.up_blocks.{i}.resnets.{j}", h)
            if i + 1 < nb:
                h = self.conv(f"decoder.up_blocks.{i}.upsamplers.0.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv("decoder.conv_out", self.gn("decoder.conv_norm_out", h, True))


# ---------------------------------------------------------------- files


def legacy(name):
    for cur, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")):
        name = name.replace(cur, old)
    return name


def main():
    g = torch.Generator().manual_seed(12)
    params = []
    for name, shape in layout(CFG):
        if name.endswith(".weight") and len(shape) == 1:  # GroupNorm scale around 1
            w = 1.0 + 0.2 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            w = 0.1 * torch.randn(shape, generator=g)
        else:  # fan-in scaled, so activations stay O(1) through the network
            fan_in = int(np.prod(shape[1:]))
            w = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        params.append((name, w.to(torch.float16)))  # fp16-representable values
    sd = {n: w.to(torch.float64) for n, w in params}
    st_write.save_safetensors("tiny_vae.safetensors", [(n, w.numpy()) for n, w in params],
                      {"config": json.dumps(CFG), "source": "tests/data/vae/make_vae_ref.py"})
    torch.save({legacy(n): w.clone() for n, w in params}, "tiny_vae_legacy.bin")

    ref = Ref(CFG, sd)
    images = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(torch.float32).to(torch.float64)
    moments = ref.encode(images)
    lc = CFG["latent_channels"]
    mean, logvar = moments[:, :lc], moments[:, lc:].clamp(-30.0, 20.0)
    latents = (CFG["scaling_factor"] * torch.randn(2, lc, 8, 8, generator=g)).to(torch.float32).to(torch.float64)
    decoded = ref.decode(latents)
    np.savez("tiny_vae_ref.npz", images=images.numpy(), moments=moments.numpy(), mean=mean.numpy(),
             logvar=logvar.numpy(), latents=latents.numpy(), decoded=decoded.numpy())
    print("params", sum(int(np.prod(s)) for _, s in layout(CFG)),
          "moments std", float(moments.std()), "decoded std", float(decoded.std()))
    full = dict(CFG, block_out_channels=[128, 256, 512, 512], norm_groups=32)
    print("full-size sd-vae-ft-ema tensors", len(layout(full)), "params", sum(int(np.prod(s)) for _, s in layout(full)))


if __name__ == "__main__":
    main()
