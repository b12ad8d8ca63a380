#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures of tests/test_parity.cpp (run from this directory):

    python3 make_parity_fixtures.py        # needs torch (1.13 tested) and numpy; not needed by CI

A small, independent PyTorch implementation of the public DiT / SiT / ReDi model code
(facebookresearch/DiT models.py and diffusion/gaussian_diffusion.py, willisma/SiT transport,
zelaki/ReDi), written from their documented semantics, not copied:
  - PatchEmbed: a stride-p convolution (weight [D, C, p, p]); tokens row-major over the grid;
  - the fixed 2-D sin-cos position table (first D/2 channels: column index, last D/2: row
    index, each [sin | cos] with w_k = 10000^(-k/(D/4))), added to every token (Separate: the
    same table for the x half and the z half);
  - TimestepEmbedder: [cos(t f) | sin(t f)], f_k = exp(-ln(10000) k / 128), 256 features ->
    Linear -> SiLU -> Linear; LabelEmbedder: a table of classes + 1 rows (last = null class);
  - adaLN-Zero blocks: (shift, scale, gate) x (msa, mlp) = chunk(6) of Linear(SiLU(c));
    x += gate * Attn(LN(x) (1 + scale) + shift); x += gate * MLP(LN(x) (1 + scale) + shift);
    LN without affine, eps 1e-6; timm Attention (qkv rows [q; k; v], heads contiguous,
    scale hd^-0.5); MLP fc1 -> GELU(tanh) -> fc2;
  - FinalLayer: LN, (shift, scale) = chunk(2) of Linear(SiLU(c)), Linear to p*p*C_out;
    unpatchify 'nhwpqc -> nchpwq';
  - ReDi Merged: one patch embed over the channels [x, z] and one head; Separate: x_embedder /
    z_embedder and final_layer.linear / final_layer.z_linear, sequence [x tokens ; z tokens];
  - learned sigma: C_out = 2 C_in, [eps | v] (x then z channels inside each half);
  - losses: SiT's linear flow matching (x_t = t x1 + (1 - t) n, target x1 - n) and DiT's DDPM
    hybrid loss (mse on eps + the variational bound with the mean's gradient stopped, learned
    range variance, decoder NLL at t = 0, in bits), each squared error averaged over its own
    group of channels: L = mean_b[mse_x + lambda_z mse_z (+ vb over all channels)].
Weights and inputs are random (DiT's zero initialisation would hide terms) and rounded to
float32, so the float and double C++ models read exactly the same values; everything is then
computed in float64. Each fixture holds the config (metadata), the weights under their official
state_dict names ("model." prefix, pos_embed included), the inputs (x0, z0, noise, t, labels),
the reference network input x_t, the output, the loss terms and the gradient of the loss with
respect to every parameter ("grad." prefix).
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import st_write  # noqa: E402  (tests/data/st_write.py)

torch.set_default_dtype(torch.float64)


# ------------------------------------------------------------------------------- the model
def pos_table(grid, D):
    q = D // 4
    w = 1.0 / (10000.0 ** (np.arange(q, dtype=np.float64) / q))
    rows = []
    for gy in range(grid):
        for gx in range(grid):
            rows.append(np.concatenate([np.sin(gx * w), np.cos(gx * w), np.sin(gy * w), np.cos(gy * w)]))
    return torch.tensor(np.stack(rows))  # [grid*grid, D]


def timestep_features(t, dim=256, max_period=10000.0):
    half = dim // 2
    f = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    a = t[:, None].double() * f[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def linear(P, name, x):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"])


def attention(P, pre, x, heads):
    B, N, D = x.shape
    hd = D // heads
    qkv = linear(P, pre + "qkv", x).reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = torch.softmax((q @ k.transpose(-2, -1)) * hd ** -0.5, dim=-1)
    return linear(P, pre + "proj", (a @ v).transpose(1, 2).reshape(B, N, D))


def ln(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def patch_embed(P, name, img, p):
    y = F.conv2d(img, P[name + ".proj.weight"], P[name + ".proj.bias"], stride=p)  # [B, D, g, g]
    return y.flatten(2).transpose(1, 2)  # [B, L, D]


def unpatchify(tok, c, p, grid):
    B = tok.shape[0]
    x = tok.reshape(B, grid, grid, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(B, c, grid * p, grid * p)


def forward(P, cfg, x, t, y):
    """x [B, Cx + r, H, W] -> out [B, C_out, H, W] (official semantics)."""
    Cx, r, p, D, depth, heads = cfg["Cx"], cfg["r"], cfg["patch"], cfg["width"], cfg["depth"], cfg["heads"]
    grid = cfg["input_size"] // p
    sep = cfg["fusion"] == "Separate"
    pos = P["pos_embed"][0]
    if sep:
        hx = patch_embed(P, "x_embedder", x[:, :Cx], p) + pos
        hz = patch_embed(P, "z_embedder", x[:, Cx:], p) + pos
        h = torch.cat([hx, hz], dim=1)
    else:
        h = patch_embed(P, "x_embedder", x, p) + pos
    temb = linear(P, "t_embedder.mlp.2", F.silu(linear(P, "t_embedder.mlp.0", timestep_features(t))))
    c = temb + P["y_embedder.embedding_table.weight"][y]
    sc = F.silu(c)
    for i in range(depth):
        b = "blocks.%d." % i
        s1, c1, g1, s2, c2, g2 = linear(P, b + "adaLN_modulation.1", sc).chunk(6, dim=1)
        h = h + g1.unsqueeze(1) * attention(P, b + "attn.", modulate(ln(h), s1, c1), heads)
        m = linear(P, b + "mlp.fc2", F.gelu(linear(P, b + "mlp.fc1", modulate(ln(h), s2, c2)), approximate="tanh"))
        h = h + g2.unsqueeze(1) * m
    shift, scale = linear(P, "final_layer.adaLN_modulation.1", sc).chunk(2, dim=1)
    h = modulate(ln(h), shift, scale)
    sig = 2 if cfg["learn_sigma"] else 1
    if not sep:
        return unpatchify(linear(P, "final_layer.linear", h), sig * (Cx + r), p, grid)
    L = grid * grid
    ox = unpatchify(linear(P, "final_layer.linear", h[:, :L]), sig * Cx, p, grid)
    oz = unpatchify(linear(P, "final_layer.z_linear", h[:, L:]), sig * r, p, grid)
    if not cfg["learn_sigma"]:
        return torch.cat([ox, oz], dim=1)
    return torch.cat([ox[:, :Cx], oz[:, :r], ox[:, Cx:], oz[:, r:]], dim=1)  # [eps_x eps_z | v_x v_z]


def state_dict_shapes(cfg):
    Cx, r, p, D, depth, K = cfg["Cx"], cfg["r"], cfg["patch"], cfg["width"], cfg["depth"], cfg["classes"]
    Dm = 4 * D
    sig = 2 if cfg["learn_sigma"] else 1
    S = []
    if cfg["fusion"] == "Separate":
        S += [("x_embedder.proj.weight", (D, Cx, p, p)), ("x_embedder.proj.bias", (D,)),
              ("z_embedder.proj.weight", (D, r, p, p)), ("z_embedder.proj.bias", (D,))]
    else:
        S += [("x_embedder.proj.weight", (D, Cx + r, p, p)), ("x_embedder.proj.bias", (D,))]
    S += [("t_embedder.mlp.0.weight", (D, 256)), ("t_embedder.mlp.0.bias", (D,)),
          ("t_embedder.mlp.2.weight", (D, D)), ("t_embedder.mlp.2.bias", (D,)),
          ("y_embedder.embedding_table.weight", (K + 1, D))]
    for i in range(depth):
        b = "blocks.%d." % i
        S += [(b + "attn.qkv.weight", (3 * D, D)), (b + "attn.qkv.bias", (3 * D,)),
              (b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)),
              (b + "mlp.fc1.weight", (Dm, D)), (b + "mlp.fc1.bias", (Dm,)),
              (b + "mlp.fc2.weight", (D, Dm)), (b + "mlp.fc2.bias", (D,)),
              (b + "adaLN_modulation.1.weight", (6 * D, D)), (b + "adaLN_modulation.1.bias", (6 * D,))]
    S += [("final_layer.adaLN_modulation.1.weight", (2 * D, D)), ("final_layer.adaLN_modulation.1.bias", (2 * D,))]
    if cfg["fusion"] == "Separate":
        S += [("final_layer.linear.weight", (p * p * sig * Cx, D)), ("final_layer.linear.bias", (p * p * sig * Cx,)),
              ("final_layer.z_linear.weight", (p * p * sig * r, D)), ("final_layer.z_linear.bias", (p * p * sig * r,))]
    else:
        S += [("final_layer.linear.weight", (p * p * sig * (Cx + r), D)),
              ("final_layer.linear.bias", (p * p * sig * (Cx + r),))]
    return S


# ------------------------------------------------------------------------------- the losses
def ddpm_schedule(T=1000):
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    ac = np.cumprod(1.0 - betas)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    return {
        "sqrt_ac": np.sqrt(ac), "sqrt_1mac": np.sqrt(1.0 - ac),
        "sqrt_recip_ac": np.sqrt(1.0 / ac), "sqrt_recipm1_ac": np.sqrt(1.0 / ac - 1.0),
        "post_lv_clipped": np.log(np.append(post_var[1], post_var[1:])),
        "log_betas": np.log(betas),
        "coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "coef2": (1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac),
    }


def at(s, key, t, like):
    return torch.tensor(s[key][t.numpy()]).reshape(-1, *([1] * (like.dim() - 1)))


def approx_cdf(u):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def decoder_nll(x, mean, log_scale):
    cx = x - mean
    inv = torch.exp(-log_scale)
    cdf_plus = approx_cdf(inv * (cx + 1.0 / 255.0))
    cdf_min = approx_cdf(inv * (cx - 1.0 / 255.0))
    log_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    lp = torch.where(x < -0.999, log_plus, torch.where(x > 0.999, log_one_minus_min, log_delta))
    return -lp


def vb_bits(s, t, x0, xt, eps, v):
    """Per-element variational bound in bits (eps is the gradient-stopped prediction)."""
    frac = (v + 1.0) / 2.0
    min_log = at(s, "post_lv_clipped", t, x0)
    max_log = at(s, "log_betas", t, x0)
    model_lv = frac * max_log + (1.0 - frac) * min_log
    px0 = at(s, "sqrt_recip_ac", t, x0) * xt - at(s, "sqrt_recipm1_ac", t, x0) * eps
    c1, c2 = at(s, "coef1", t, x0), at(s, "coef2", t, x0)
    model_mean = c1 * px0 + c2 * xt
    true_mean = c1 * x0 + c2 * xt
    kl = 0.5 * (-1.0 + model_lv - min_log + torch.exp(min_log - model_lv)
                + (true_mean - model_mean) ** 2 * torch.exp(-model_lv))
    nll = decoder_nll(x0, model_mean, 0.5 * model_lv)
    first = (t == 0).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.where(first, nll, kl) / math.log(2.0)


def loss_terms(cfg, out, x0_fused, noise, t, x_t):
    Cx, Cin = cfg["Cx"], cfg["Cx"] + cfg["r"]
    lam = cfg["lambda_z"]
    flat = lambda a: a.flatten(1).mean(1)  # mean over the non-batch dims (DiT's mean_flat)
    if cfg["objective"] == "FlowMatching":
        target = x0_fused - noise
    else:
        target = noise
    pred = out[:, :Cin]
    mse_x = flat((pred[:, :Cx] - target[:, :Cx]) ** 2)
    mse_z = flat((pred[:, Cx:] - target[:, Cx:]) ** 2) if cfg["r"] > 0 else torch.zeros_like(mse_x)
    vb = torch.zeros_like(mse_x)
    if cfg["learn_sigma"]:
        s = ddpm_schedule()
        vb = flat(vb_bits(s, t.long(), x0_fused, x_t, pred.detach(), out[:, Cin:]))
    loss = (mse_x + lam * mse_z + vb).mean()
    return loss, mse_x.mean(), mse_z.mean(), vb.mean()


def noisy_input(cfg, x0_fused, noise, t):
    if cfg["objective"] == "FlowMatching":
        tt = t.reshape(-1, 1, 1, 1)
        return tt * x0_fused + (1.0 - tt) * noise
    s = ddpm_schedule()
    ti = t.long()
    return at(s, "sqrt_ac", ti, x0_fused) * x0_fused + at(s, "sqrt_1mac", ti, x0_fused) * noise


# ------------------------------------------------------------------------------- fixtures
def f32(a):
    return torch.tensor(np.asarray(a, dtype=np.float32).astype(np.float64))


def make(name, cfg, t_values, labels, seed):
    rng = np.random.default_rng(seed)
    B, Cx, r, S = len(t_values), cfg["Cx"], cfg["r"], cfg["input_size"]
    P = {}
    for k, shape in state_dict_shapes(cfg):
        std = 0.3 / math.sqrt(shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)) if len(shape) > 1 else 0.1
        P[k] = f32(rng.normal(0.0, std, size=shape)).requires_grad_(True)
    grid = S // cfg["patch"]
    P["pos_embed"] = f32(pos_table(grid, cfg["width"]).numpy())[None]
    x0 = f32(rng.uniform(-0.95, 0.95, size=(B, Cx, S, S)))
    z0 = f32(rng.normal(0.0, 1.0, size=(B, r, S, S)))
    noise = f32(rng.normal(0.0, 1.0, size=(B, Cx + r, S, S)))
    t = f32(t_values)
    y = torch.tensor(labels, dtype=torch.long)
    x0_fused = torch.cat([x0, z0], dim=1)
    x_t = noisy_input(cfg, x0_fused, noise, t)
    out = forward(P, cfg, x_t, t, y)
    loss, mse_x, mse_z, vb = loss_terms(cfg, out, x0_fused, noise, t, x_t)
    params = [k for k, _ in state_dict_shapes(cfg)]
    grads = torch.autograd.grad(loss, [P[k] for k in params])
    T = {}
    for k in ["pos_embed"] + params:
        T["model." + k] = P[k].detach().numpy().astype(np.float32)
    T["x0"] = x0.numpy().astype(np.float32)
    T["z0"] = z0.numpy().astype(np.float32)
    T["noise"] = noise.numpy().astype(np.float32)
    T["t"] = t.numpy().astype(np.float32)
    T["labels"] = np.asarray(labels, dtype=np.int32)
    T["x_t"] = x_t.detach().numpy()
    T["out"] = out.detach().numpy()
    T["loss"] = np.array([loss.item(), mse_x.item(), mse_z.item(), vb.item()])
    for k, g in zip(params, grads):
        T["grad." + k] = g.numpy()
    meta = {k: str(v) for k, v in cfg.items()}
    meta["generator"] = "tests/data/parity/make_parity_fixtures.py (torch %s)" % torch.__version__
    st_write.save_safetensors(name, T, meta)
    print("%s: loss %.10f (mse_x %.6f, mse_z %.6f, vb %.6f), %d parameters, out rms %.3f"
          % (name, loss.item(), mse_x.item(), mse_z.item(), vb.item(),
             sum(int(np.prod(s)) for _, s in state_dict_shapes(cfg)), out.pow(2).mean().sqrt().item()))


BASE = {"input_size": 8, "patch": 2, "Cx": 4, "width": 16, "heads": 2, "depth": 2, "classes": 5}

if __name__ == "__main__":
    make("sit_merged_flow.safetensors",
         dict(BASE, r=3, fusion="Merged", objective="FlowMatching", learn_sigma=False, lambda_z=0.7, depth=3),
         [0.05, 0.5, 0.93], [1, 4, 5], seed=1)
    make("dit_separate_ddpm_sigma.safetensors",
         dict(BASE, r=3, fusion="Separate", objective="DDPM", learn_sigma=True, lambda_z=1.0),
         [0, 1, 500, 999], [0, 5, 2, 3], seed=2)
    make("dit_plain_ddpm_sigma.safetensors",
         dict(BASE, r=0, fusion="Merged", objective="DDPM", learn_sigma=True, lambda_z=1.0),
         [0, 37, 998], [2, 5, 4], seed=3)
