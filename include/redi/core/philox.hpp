// redi/core/philox.hpp — counter-based RNG (Philox-4x32-10, Salmon et al. 2011). A normal
// sample depends only on (seed, stream, index): normal(seed, stream, i) is the same number
// whichever thread, batch or device draws it. The Box-Muller transform uses redi's own log,
// sqrt and sin/cos built from correctly rounded IEEE double operations (+, -, *, /, sqrt) with
// no fused multiply-add, so the CUDA kernel (which includes this header) returns bit-identical
// floats. Builds must not contract a*b+c into FMA here: the functions below use REDI_DMUL etc.,
// which are __dmul_rn/__dadd_rn on the device; on the host redi's CMake target adds
// -ffp-contract=off.
#pragma once
#include <cstdint>
#include <cstring>

#include "redi/core/macros.hpp"

namespace redi::philox {

#if defined(__CUDA_ARCH__)
#define REDI_DMUL(a, b) __dmul_rn((a), (b))
#define REDI_DADD(a, b) __dadd_rn((a), (b))
#define REDI_DSUB(a, b) __dsub_rn((a), (b))
#define REDI_DDIV(a, b) __ddiv_rn((a), (b))
#define REDI_DSQRT(a) __dsqrt_rn(a)
#else
#define REDI_DMUL(a, b) ((a) * (b))
#define REDI_DADD(a, b) ((a) + (b))
#define REDI_DSUB(a, b) ((a) - (b))
#define REDI_DDIV(a, b) ((a) / (b))
#define REDI_DSQRT(a) ::redi::philox::detail::host_sqrt(a)
#endif

struct U4 {
  std::uint32_t x, y, z, w;
};

namespace detail {
inline double host_sqrt(double a) { return __builtin_sqrt(a); }

REDI_HD void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  std::uint64_t p = std::uint64_t(a) * std::uint64_t(b);
  hi = std::uint32_t(p >> 32);
  lo = std::uint32_t(p);
}
}  // namespace detail

/// Philox-4x32 with 10 rounds: counter (4 words) and key (2 words) -> 4 random words.
REDI_HD U4 philox4x32(U4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo(M0, ctr.x, hi0, lo0);
    detail::mulhilo(M1, ctr.z, hi1, lo1);
    ctr = U4{hi1 ^ ctr.y ^ k0, lo1, hi0 ^ ctr.w ^ k1, lo0};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

/// Random words for block `block` (4 consecutive indices) of stream `stream` under `seed`.
REDI_HD U4 block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  U4 ctr{std::uint32_t(block), std::uint32_t(block >> 32), std::uint32_t(stream),
         std::uint32_t(stream >> 32)};
  return philox4x32(ctr, std::uint32_t(seed), std::uint32_t(seed >> 32));
}

/// Uniform in (0, 1]: 24 random bits, exact in float and double.
REDI_HD double uniform_open0(std::uint32_t w) { return double((w >> 8) + 1u) * (1.0 / 16777216.0); }
/// Uniform in [0, 1).
REDI_HD double uniform01(std::uint32_t w) { return double(w >> 8) * (1.0 / 16777216.0); }

/// Natural log of u in (0, 1] from IEEE ops only: u = m 2^e, m in [1, 2),
/// ln m = 2 atanh(s), s = (m - 1) / (m + 1) <= 1/3; 22 odd terms reach double rounding.
REDI_HD double det_log(double u) {
  std::uint64_t bits;
  std::memcpy(&bits, &u, 8);
  int e = int((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &bits, 8);
  double s = REDI_DDIV(REDI_DSUB(m, 1.0), REDI_DADD(m, 1.0));
  double s2 = REDI_DMUL(s, s);
  double sum = 0.0;
  for (int k = 43; k >= 1; k -= 2) sum = REDI_DADD(REDI_DDIV(1.0, double(k)), REDI_DMUL(s2, sum));
  double ln_m = REDI_DMUL(REDI_DMUL(2.0, s), sum);
  constexpr double ln2 = 0.69314718055994530942;
  return REDI_DADD(REDI_DMUL(double(e), ln2), ln_m);
}

/// sin and cos of 2*pi*f for f in [0, 1), from IEEE ops only (quadrant reduction + Taylor).
REDI_HD void det_sincos2pi(double f, double& s, double& c) {
  double q4 = REDI_DMUL(f, 4.0);  // exact
  int q = int(q4);
  double r = REDI_DSUB(q4, double(q));  // exact, in [0, 1)
  constexpr double half_pi = 1.57079632679489661923;
  double a = REDI_DMUL(r, half_pi);  // [0, pi/2)
  double a2 = REDI_DMUL(a, a);
  // Horner over Taylor terms up to a^23 / a^22.
  double ps = 0.0, pc = 0.0;
  for (int k = 11; k >= 1; --k) {
    // sin: sum (-1)^k a^(2k+1)/(2k+1)!  ; cos: sum (-1)^k a^(2k)/(2k)!
    ps = REDI_DSUB(1.0, REDI_DDIV(REDI_DMUL(a2, ps), double((2 * k) * (2 * k + 1))));
    pc = REDI_DSUB(1.0, REDI_DDIV(REDI_DMUL(a2, pc), double((2 * k - 1) * (2 * k))));
  }
  double sa = REDI_DMUL(a, ps), ca = pc;
  switch (q & 3) {
    case 0: s = sa; c = ca; break;
    case 1: s = ca; c = -sa; break;
    case 2: s = -sa; c = -ca; break;
    default: s = -ca; c = sa; break;
  }
}

/// Four standard normals of block `blk` (indices 4*blk .. 4*blk+3), Box-Muller on word pairs.
REDI_HD void normal4(std::uint64_t seed, std::uint64_t stream, std::uint64_t blk, double out[4]) {
  U4 w = block(seed, stream, blk);
  const std::uint32_t words[4] = {w.x, w.y, w.z, w.w};
  for (int p = 0; p < 2; ++p) {
    double u1 = uniform_open0(words[2 * p]);
    double u2 = uniform01(words[2 * p + 1]);
    double rad = REDI_DSQRT(REDI_DMUL(-2.0, det_log(u1)));
    double s, c;
    det_sincos2pi(u2, s, c);
    out[2 * p] = REDI_DMUL(rad, c);
    out[2 * p + 1] = REDI_DMUL(rad, s);
  }
}

/// The i-th standard normal of (seed, stream).
REDI_HD double normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  double v[4];
  normal4(seed, stream, i / 4, v);
  return v[i % 4];
}

/// The i-th uniform in [0, 1) of (seed, stream) (one word per index; independent of normal()).
REDI_HD double uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  U4 w = block(seed ^ 0x5bd1e9955bd1e995ull, stream, i / 4);
  const std::uint32_t words[4] = {w.x, w.y, w.z, w.w};
  return uniform01(words[i % 4]);
}

/// Fill out[0..n) with normals (seed, stream, offset + k), converted to T. CPU reference for
/// the CUDA kernel.
template <class T>
void fill_normal(T* out, std::size_t n, std::uint64_t seed, std::uint64_t stream,
                 std::uint64_t offset = 0) {
  std::size_t k = 0;
  while (k < n) {
    std::uint64_t idx = offset + k;
    double v[4];
    normal4(seed, stream, idx / 4, v);
    for (std::uint64_t j = idx % 4; j < 4 && k < n; ++j, ++k) out[k] = T(v[j]);
  }
}

/// Build a stream id from (purpose, sample index, step) so that a sample's noise does not
/// depend on the batch it is drawn in: 16 bits purpose, 32 bits sample, 16 bits step.
REDI_HD std::uint64_t stream_id(std::uint32_t purpose, std::uint64_t sample, std::uint32_t step) {
  return (std::uint64_t(purpose & 0xffffu) << 48) ^ ((sample & 0xffffffffull) << 16) ^
         std::uint64_t(step & 0xffffu);
}

}  // namespace redi::philox
