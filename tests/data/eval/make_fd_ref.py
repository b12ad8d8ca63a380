#!/usr/bin/env python3
"""Reference Frechet distances for tests/test_eval_fid.cpp, on covariances that are hard for a
matrix square root (d = 32, committed as float64):

  wellcond    two full-rank sample covariances (200 samples each, correlated features)
  rankdef     covariances of 12 samples each (rank 11 in 32 dimensions): the product is singular
  spectrum    S = Q diag(lambda) Q^T with lambda log-spaced over 1e-12 .. 1e3 (different Q)
  close       S2 = S1 + 1e-4 E (E symmetric PSD), mu2 = mu1 + 1e-3: FD small against the traces
  disjoint    rank-16 covariances whose column spaces are orthogonal: S1 S2 = 0, tr sqrt = 0

For each case three values:
  fd_scipy : ADM's evaluator (TTUR) formula, scipy.linalg.sqrtm(S1 S2) (+1e-6 I fallback), real part
  fd_eigh  : float64 eigh form, tr sqrt(S1^1/2 S2 S1^1/2)
  fd_true  : the eigh form in 60-digit arithmetic (mpmath), the ground truth
Run from the repository root: /usr/bin/python3 tests/data/eval/make_fd_ref.py
"""
import os
import sys
import warnings

import mpmath
import numpy as np
from scipy import linalg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import st_write  # noqa: E402  (tests/data/st_write.py)

HERE = os.path.dirname(os.path.abspath(__file__))
D = 32


def fd_scipy(mu1, s1, mu2, s2, eps=1e-6):
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
        if not np.isfinite(covmean).all():
            off = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fd_eigh(mu1, s1, mu2, s2):
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r @ s2 @ r
    e = np.linalg.eigvalsh((m + m.T) / 2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(e, 0, None)).sum())


def fd_true(mu1, s1, mu2, s2):
    mpmath.mp.dps = 60
    A = mpmath.matrix(s1.tolist())
    B = mpmath.matrix(s2.tolist())
    w, V = mpmath.eigsy(A)
    R = V * mpmath.diag([mpmath.sqrt(max(x, 0)) for x in w]) * V.T
    M = R * B * R
    M = (M + M.T) / 2
    e, _ = mpmath.eigsy(M)
    tr = sum(mpmath.sqrt(max(x, 0)) for x in e)
    d = sum((mpmath.mpf(float(a)) - mpmath.mpf(float(b))) ** 2 for a, b in zip(mu1, mu2))
    t1 = sum(A[i, i] for i in range(D))
    t2 = sum(B[i, i] for i in range(D))
    return float(d + t1 + t2 - 2 * tr)


def sample_cov(rng, n, mix):
    x = rng.standard_normal((n, D)) @ mix
    return x.mean(0), np.cov(x, rowvar=False)


def rand_orth(rng):
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return q


def cases(rng):
    c = {}
    mix1, mix2 = rng.standard_normal((D, D)) / 4, rng.standard_normal((D, D)) / 4 + np.eye(D) / 2
    c["wellcond"] = (*sample_cov(rng, 200, mix1), *sample_cov(rng, 200, mix2))
    c["rankdef"] = (*sample_cov(rng, 12, mix1), *sample_cov(rng, 12, mix2))
    lam = np.logspace(-12, 3, D)
    q1, q2 = rand_orth(rng), rand_orth(rng)
    s1 = (q1 * lam) @ q1.T
    s2 = (q2 * lam[::-1]) @ q2.T
    c["spectrum"] = (rng.standard_normal(D), (s1 + s1.T) / 2, rng.standard_normal(D), (s2 + s2.T) / 2)
    mu, s = sample_cov(rng, 200, mix1)
    e = rng.standard_normal((D, D))
    c["close"] = (mu, s, mu + 1e-3, s + 1e-4 * (e @ e.T) / D)
    q = rand_orth(rng)
    a, b = q[:, :16] * rng.uniform(0.5, 2, 16), q[:, 16:] * rng.uniform(0.5, 2, 16)
    c["disjoint"] = (np.zeros(D), a @ a.T, np.ones(D) / 10, b @ b.T)
    return c


def save_safetensors(path, tensors, metadata):
    st_write.save_safetensors(path, tensors, metadata, dtype=np.float64)


def main():
    rng = np.random.default_rng(2013)
    out, meta = {}, {}
    for k, (m1, s1, m2, s2) in cases(rng).items():
        out.update({k + ".mu1": m1, k + ".s1": s1, k + ".mu2": m2, k + ".s2": s2})
        v = np.array([fd_scipy(m1, s1, m2, s2), fd_eigh(m1, s1, m2, s2), fd_true(m1, s1, m2, s2)])
        out[k + ".fd"] = v
        print("%-9s scipy %.12g  eigh %.12g  true %.12g   scipy rel err %.2e  eigh rel err %.2e" %
              (k, v[0], v[1], v[2], abs(v[0] - v[2]) / abs(v[2]), abs(v[1] - v[2]) / abs(v[2])))
    save_safetensors(os.path.join(HERE, "fd_ref.safetensors"), out,
                     {"about": "make_fd_ref.py: fd = [scipy sqrtm (ADM), float64 eigh, 60-digit truth]"})


if __name__ == "__main__":
    main()
