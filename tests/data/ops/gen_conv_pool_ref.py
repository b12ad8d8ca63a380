# Regenerates conv_pool_ref.npz, the PyTorch reference of test_ops_conv.cpp (run from this
# directory; needs python3-torch and numpy; CI only reads the committed .npz).
#
# Every case draws its input, weights, bias and upstream gradient from torch.Generator(seed)
# in float64, runs PyTorch's conv2d / max_pool2d / avg_pool2d, and stores inputs, outputs and
# the gradients of sum(dout * out) under "<case>.<array>". Asymmetric padding is F.pad
# (left, right, top, bottom) with zeros followed by an unpadded convolution.
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
out = {}


def rand(gen, *shape):
    return torch.rand(*shape, generator=gen) * 2 - 1


def conv_case(name, seed, B, C, H, W, OC, KH, KW, stride, pad):  # pad = (top, bottom, left, right)
    g = torch.Generator().manual_seed(seed)
    x = rand(g, B, C, H, W).requires_grad_()
    w = rand(g, OC, C, KH, KW).requires_grad_()
    b = rand(g, OC).requires_grad_()
    t, bo, l, r = pad
    y = F.conv2d(F.pad(x, (l, r, t, bo)), w, b, stride=stride)
    dy = rand(g, *y.shape)
    (y * dy).sum().backward()
    geom = np.array([B, C, H, W, OC, KH, KW, stride[0], stride[1], t, bo, l, r], dtype=np.int64)
    for k, v in {"geom": geom, "x": x, "w": w, "b": b, "y": y, "dy": dy, "dx": x.grad, "dw": w.grad,
                 "db": b.grad}.items():
        out[f"{name}.{k}"] = v if isinstance(v, np.ndarray) else v.detach().numpy()


def pool_case(name, seed, kind, B, C, H, W, k, s, p, count_include_pad=True):
    g = torch.Generator().manual_seed(seed)
    x = rand(g, B, C, H, W).requires_grad_()
    if kind == "max":
        y = F.max_pool2d(x, k, s, p)
    else:
        y = F.avg_pool2d(x, k, s, p, count_include_pad=count_include_pad)
    dy = rand(g, *y.shape)
    (y * dy).sum().backward()
    geom = np.array([B, C, H, W, k, s, p, int(count_include_pad)], dtype=np.int64)
    for kk, v in {"geom": geom, "x": x, "y": y, "dy": dy, "dx": x.grad}.items():
        out[f"{name}.{kk}"] = v if isinstance(v, np.ndarray) else v.detach().numpy()


conv_case("conv3x3_s1_p1", 1, 2, 3, 7, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1))
conv_case("conv3x3_s2_p0101", 2, 2, 3, 8, 8, 5, 3, 3, (2, 2), (0, 1, 0, 1))
conv_case("conv1x1_s1", 3, 2, 6, 5, 4, 3, 1, 1, (1, 1), (0, 0, 0, 0))
conv_case("conv5x3_s21_p2102", 4, 2, 2, 9, 7, 3, 5, 3, (2, 1), (2, 1, 0, 2))
conv_case("conv7x7_s2_p3", 5, 1, 3, 11, 10, 4, 7, 7, (2, 2), (3, 3, 3, 3))
pool_case("max2x2_s2", 6, "max", 2, 3, 8, 6, 2, 2, 0)
pool_case("max3x3_s2", 7, "max", 2, 2, 9, 8, 3, 2, 0)
pool_case("max3x3_s1_p1", 8, "max", 1, 2, 5, 6, 3, 1, 1)
pool_case("avg2x2_s2", 9, "avg", 2, 3, 8, 6, 2, 2, 0)
pool_case("avg3x3_s1_p1_nopad", 10, "avg", 2, 2, 7, 5, 3, 1, 1, count_include_pad=False)
pool_case("avg3x3_s1_p1_pad", 11, "avg", 1, 2, 6, 5, 3, 1, 1, count_include_pad=True)
np.savez("conv_pool_ref.npz", **out)
print(len(out), "arrays")
