#!/usr/bin/env python3
"""PyTorch reference for bench_cuda_train_step: SiT-XL/2 with ReDi channels (in 12 = 4 VAE + 8
PCA-feature channels, out 12, learn_sigma off, 32x32 latents), written from the description in
docs/method.md sections 7 and 9 and docs/models.md (no timm needed): patch-embed convolution, fixed 2-D sin-cos
position table, timestep MLP, label table with a null row (labels dropped with p = 0.1), 28
adaLN-Zero blocks (LayerNorm without affine, eps 1e-6; qkv-bias attention through
F.scaled_dot_product_attention; GELU-tanh MLP ratio 4), final adaLN layer, unpatchify.

Training step (as SiT/ReDi train): flow-matching interpolation x_t = t x1 + (1 - t) n, velocity
target x1 - n, MSE, backward, AdamW (lr 1e-4, no weight decay), EMA (decay 0.9999). Forward and
backward under bf16 autocast (fp32 master weights), no activation checkpointing, eager mode.
Optionally the same in fp32 with TF32 matmuls (--precision tf32), the setting of redi's GPU path.
Sampling: forward-only Euler steps with classifier-free guidance for 256 images (512 rows).

Prints "RESULT pytorch_<what> key=value ..." lines (parsed by device_check.sh) and writes JSON
with --json. Exits 0 with "SKIPPED" when torch or a CUDA device is missing.

  python3 tests/cuda/pytorch_reference_step.py --batch 64 --steps 10 --precision bf16,tf32
"""
import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    print("SKIPPED: torch is not installed")
    sys.exit(0)


def sincos_2d(D, grid):
    """[grid*grid, D]: first D/2 channels the column index, last D/2 the row index, each
    [sin(pos w_k), cos(pos w_k)], w_k = 10000^(-k/(D/4)) (docs/method.md section 9)."""
    q = D // 4
    w = 1.0 / (10000.0 ** (torch.arange(q, dtype=torch.float64) / q))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                            torch.arange(grid, dtype=torch.float64), indexing="ij")
    xa = xs.reshape(-1, 1) * w[None]
    ya = ys.reshape(-1, 1) * w[None]
    return torch.cat([xa.sin(), xa.cos(), ya.sin(), ya.cos()], dim=1).float()


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    def __init__(self, D, freq=256):
        super().__init__()
        self.freq = freq
        self.mlp = nn.Sequential(nn.Linear(freq, D), nn.SiLU(), nn.Linear(D, D))

    def forward(self, t):
        half = self.freq // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        a = t.float()[:, None] * f[None]
        return self.mlp(torch.cat([torch.cos(a), torch.sin(a)], dim=-1))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, D, drop=0.1):
        super().__init__()
        self.num_classes, self.drop = num_classes, drop
        self.embedding_table = nn.Embedding(num_classes + 1, D)

    def forward(self, y):
        if self.training and self.drop > 0:
            y = torch.where(torch.rand(y.shape[0], device=y.device) < self.drop,
                            torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)


class Attention(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)

    def forward(self, x):
        B, L, D = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.H, D // self.H).permute(2, 0, 3, 1, 4)
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0 (flash / efficient)
            o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        else:
            att = (qkv[0] @ qkv[1].transpose(-2, -1)) * (qkv.shape[-1] ** -0.5)
            o = att.softmax(dim=-1) @ qkv[2]
        return self.proj(o.transpose(1, 2).reshape(B, L, D))


class Mlp(nn.Module):
    def __init__(self, D, hidden):
        super().__init__()
        self.fc1 = nn.Linear(D, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, D)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    def __init__(self, cin, D, p):
        super().__init__()
        self.proj = nn.Conv2d(cin, D, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, D, H, ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(D, H)
        self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(D, ratio * D)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))

    def forward(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), s1, sc1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), s2, sc2))


class FinalLayer(nn.Module):
    def __init__(self, D, p, C):
        super().__init__()
        self.norm_final = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(D, p * p * C)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SiT(nn.Module):
    def __init__(self, size=32, p=2, cin=12, depth=28, D=1152, H=16, num_classes=1000):
        super().__init__()
        self.p, self.cin, self.cout = p, cin, cin
        self.grid = size // p
        self.x_embedder = PatchEmbed(cin, D, p)
        self.t_embedder = TimestepEmbedder(D)
        self.y_embedder = LabelEmbedder(num_classes, D)
        self.register_buffer("pos_embed", sincos_2d(D, self.grid)[None], persistent=False)
        self.blocks = nn.ModuleList([Block(D, H) for _ in range(depth)])
        self.final_layer = FinalLayer(D, p, self.cout)
        self._init()

    def _init(self):  # DiT/SiT initialisation
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        for lin in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        for blk in self.blocks:
            nn.init.zeros_(blk.adaLN_modulation[-1].weight)
            nn.init.zeros_(blk.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def forward(self, x, t, y):
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for blk in self.blocks:
            h = blk(h, c)
        h = self.final_layer(h, c)  # [B, L, p*p*C], (i, j, c) with c fastest
        B, g, p, C = h.shape[0], self.grid, self.p, self.cout
        h = h.reshape(B, g, g, p, p, C)
        return torch.einsum("nhwpqc->nchpwq", h).reshape(B, C, g * p, g * p)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters


def train_bench(model, batch, steps, precision, fused):
    dev = model.pos_embed.device
    opt_kw = {"lr": 1e-4, "weight_decay": 0.0}
    if fused:
        opt_kw["fused"] = True
    opt = torch.optim.AdamW(model.parameters(), **opt_kw)
    ema = [p.detach().clone() for p in model.parameters()]
    params = list(model.parameters())
    hw = model.grid * model.p
    x1 = torch.randn(batch, model.cin, hw, hw, device=dev)
    y = torch.randint(0, model.y_embedder.num_classes, (batch,), device=dev)
    model.train()
    last = {}

    def step():
        n = torch.randn_like(x1)
        t = torch.rand(batch, device=dev)
        tt = t.view(-1, 1, 1, 1)
        xt = tt * x1 + (1 - tt) * n
        target = x1 - n
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=(precision == "bf16")):
            pred = model(xt, t, y)
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, 0.9999)
            torch._foreach_add_(ema, params, alpha=1 - 0.9999)
        last["loss"] = loss

    sec = timed(step, 2, steps)
    del opt, ema
    return sec, float(last["loss"])


@torch.no_grad()
def sample_bench(model, precision, images=256, steps=3, guidance=4.0):
    dev = model.pos_embed.device
    model.eval()
    hw = model.grid * model.p
    nc = model.y_embedder.num_classes
    x = torch.randn(images, model.cin, hw, hw, device=dev)
    y = torch.cat([torch.arange(images, device=dev) % nc, torch.full((images,), nc, device=dev)])
    t = torch.full((2 * images,), 0.5, device=dev)
    dt = -1.0 / 250

    def step():
        nonlocal x
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=(precision == "bf16")):
            v = model(torch.cat([x, x]), t, y).float()
        vc, vu = v.chunk(2)
        x = x + dt * (vu + guidance * (vc - vu))

    return timed(step, 1, steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", default="bf16", help="comma list of bf16, tf32")
    ap.add_argument("--no-fused", action="store_true", help="foreach AdamW instead of fused")
    ap.add_argument("--json", default=None)
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="tiny model on the CPU (checks the script, measures nothing)")
    a = ap.parse_args()
    if a.cpu_smoke:
        model = SiT(size=8, depth=2, D=64, H=4, num_classes=10)
        for prec in ("bf16", "tf32"):
            sec, loss = train_bench(model, 4, 2, prec, fused=False)
            ssec = sample_bench(model, prec, images=4, steps=1)
            print(f"cpu smoke {prec}: step {sec:.3f}s loss {loss:.4f} sample step {ssec:.3f}s")
        return 0
    if not torch.cuda.is_available():
        print("SKIPPED: no CUDA device available to torch")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    if hasattr(torch, "device") and hasattr(torch.device("cuda"), "__enter__"):
        with torch.device("cuda"):  # torch >= 2.0: build on the GPU
            model = SiT()
    else:
        model = SiT().cuda()
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, "
          f"SiT-XL/2 ReDi 12->12 ch, {nparams / 1e6:.1f}M params", flush=True)
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
           "params_M": nparams / 1e6}
    for prec in [p.strip() for p in a.precision.split(",") if p.strip()]:
        b = a.batch
        while b >= 8:
            try:
                sec, loss = train_bench(model, b, a.steps, prec, not a.no_fused)
                break
            except RuntimeError as e:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if "out of memory" not in str(e):
                    raise
                print(f"pytorch {prec}: batch {b} out of memory", flush=True)
                torch.cuda.empty_cache()
                b //= 2
        else:
            print(f"RESULT pytorch_train_{prec} error=\"no batch fits\"", flush=True)
            continue
        ips = b / sec
        print(f"RESULT pytorch_train_{prec} batch={b} step_ms={sec * 1e3:.2f} "
              f"images_per_s={ips:.2f} loss={loss:.4f} "
              f"peak_mem_GiB={torch.cuda.max_memory_allocated() / 2**30:.1f}", flush=True)
        out[f"train_{prec}"] = {"batch": b, "step_ms": sec * 1e3, "images_per_s": ips}
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        ssec = sample_bench(model, prec)
        print(f"RESULT pytorch_sample_{prec} images=256 rows=512 step_ms={ssec * 1e3:.2f} "
              f"images_x_steps_per_s={256 / ssec:.2f}", flush=True)
        out[f"sample_{prec}"] = {"step_ms": ssec * 1e3, "images_x_steps_per_s": 256 / ssec}
        torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
