// instgs CPU rasterizer: tile binning, forward compositing and hand-written backward.
//
// Written for instgs (Apache-2.0). The algorithm follows the 3DGS / gsplat "classic"
// rasterizer (Kerbl et al. 2023; Ye et al., gsplat, 2024): 16x16 tiles, Gaussians sorted by
// depth, front-to-back alpha compositing with early termination, and a backward pass that
// walks each pixel's list back to front, recovering the transmittance by division.
//
// CPU-specific layout (see docs/rasterizer.md):
//   * one tile is processed by one thread; a tile row of 16 pixels is two 8-lane vectors;
//   * the loop is Gaussian-major inside a tile: each Gaussian only visits the rows and
//     8-pixel halves of its alpha >= 1/255 box, so small Gaussians are cheap;
//   * the backward writes one gradient record per (tile, Gaussian) intersection and a final
//     pass sums the records per Gaussian: no atomics, bitwise deterministic for any number of
//     threads.
// The 8-lane code uses GCC/Clang vector extensions, so it compiles to AVX2 with -mavx2 -mfma
// and to SSE pairs (or scalar code) elsewhere.

#include "rasterize.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace instgs {
namespace {

constexpr int TILE = 16;
constexpr int LANES = 8;
constexpr int SLOTS = TILE * TILE / LANES;  // 32 vectors of 8 pixels per tile
constexpr float ALPHA_MIN = 1.0f / 255.0f;
constexpr float ALPHA_MAX = 0.99f;
constexpr float T_MIN = 1e-4f;
constexpr float BOX_MARGIN = 0.01f;  // px; guards the box test against rounding

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

inline v8f splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }
inline v8i splati(int32_t x) { return v8i{x, x, x, x, x, x, x, x}; }

// m ? a : b, lane-wise (m lanes are all-ones or zero).
inline v8f select(v8i m, v8f a, v8f b) { return (v8f)(((v8i)a & m) | ((v8i)b & ~m)); }
inline v8i selecti(v8i m, v8i a, v8i b) { return (a & m) | (b & ~m); }

inline int movemask(v8i m) {
#if defined(__AVX__)
  return _mm256_movemask_ps((__m256)m);
#else
  int r = 0;
  for (int l = 0; l < LANES; ++l) r |= (m[l] != 0) << l;
  return r;
#endif
}

// 1 / x with ~23-bit accuracy (rcp + one Newton step under AVX; exact division otherwise).
inline v8f vrcp(v8f x) {
#if defined(__AVX__)
  const v8f r = (v8f)_mm256_rcp_ps((__m256)x);
  return r * (splat(2.f) - x * r);
#else
  return splat(1.f) / x;
#endif
}

inline float hsum(v8f v) {
  float s = 0.f;
  for (int l = 0; l < LANES; ++l) s += v[l];
  return s;
}

// exp(x) for 8 lanes, Cephes-style range reduction + degree-6 polynomial (~2 ulp).
inline v8f vexp(v8f x) {
  x = select(x < splat(88.0f), x, splat(88.0f));
  x = select(x > splat(-87.0f), x, splat(-87.0f));
  const v8f t = x * splat(1.44269504088896341f) + splat(0.5f);
  v8f n = __builtin_convertvector(__builtin_convertvector(t, v8i), v8f);  // trunc
  n = n + __builtin_convertvector(n > t, v8f);                             // -> floor
  x = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  v8f y = splat(1.9875691500e-4f);
  y = y * x + splat(1.3981999507e-3f);
  y = y * x + splat(8.3334519073e-3f);
  y = y * x + splat(4.1665795894e-2f);
  y = y * x + splat(1.6666665459e-1f);
  y = y * x + splat(5.0000001201e-1f);
  y = y * (x * x) + x + splat(1.0f);
  const v8i e = (__builtin_convertvector(n, v8i) + splati(127)) << 23;
  return y * (v8f)e;
}

// float -> int for pixel bounds, saturating (a Gaussian touching the near plane can have a
// box of 1e9 px; a plain cast of that is undefined).
inline int to_px(float x) { return (int)std::max(-1.0e7f, std::min(1.0e7f, x)); }

// One projected Gaussian, packed for the tile loops (32 bytes).
struct Splat {
  float mx, my, a, b, c, o, ex, ey;
  float L;  // ln(255 o): alpha >= 1/255  <=>  sigma <= L
};

// Shared evaluation of sigma / vis / alpha so forward and backward take identical decisions.
struct Eval {
  v8f dx, sigma, vis, alpha;
  v8i ok;  // sigma >= 0 and alpha >= 1/255
};

inline Eval evaluate(const Splat& s, v8f px, float py) {
  Eval e;
  e.dx = splat(s.mx) - px;
  const float dy = s.my - py;
  e.sigma = splat(0.5f) * (splat(s.a) * e.dx * e.dx + splat(s.c * dy * dy)) +
            splat(s.b * dy) * e.dx;
  e.vis = vexp(-e.sigma);
  const v8f raw = splat(s.o) * e.vis;
  e.alpha = select(raw < splat(ALPHA_MAX), raw, splat(ALPHA_MAX));
  e.ok = (e.sigma >= splat(0.f)) & (e.alpha >= splat(ALPHA_MIN));
  return e;
}

// Tile lists visit Gaussians in depth order, i.e. randomly in memory: fetch ahead.
constexpr int PREFETCH = 4;

inline void prefetch_splat(const std::vector<Splat>& splats, const float* col, int64_t K,
                           int32_t cg) {
  const char* p = reinterpret_cast<const char*>(splats.data() + cg);
  __builtin_prefetch(p);
  __builtin_prefetch(p + sizeof(Splat) - 1);
  const char* c = reinterpret_cast<const char*>(col + (int64_t)cg * K);
  __builtin_prefetch(c);
  __builtin_prefetch(c + sizeof(float) * K - 1);
}

struct Geometry {
  int64_t C, N, K, W, H, TW, TH, NT;
};

// Cameras C, Gaussians N and channels K from the inputs; tiles of TILE x TILE pixels.
inline Geometry make_geometry(const at::Tensor& means2d, const at::Tensor& colors,
                              int64_t width, int64_t height) {
  Geometry g;
  g.C = means2d.size(0);
  g.N = means2d.size(1);
  g.K = colors.size(2);
  g.W = width;
  g.H = height;
  g.TW = (width + TILE - 1) / TILE;
  g.TH = (height + TILE - 1) / TILE;
  g.NT = g.TW * g.TH;
  return g;
}

// Pixel rows/columns (tile-local, inclusive) of the tile covered by a Gaussian's box;
// returns false if none.
inline bool local_box(const Splat& s, int x0, int y0, int W, int H, int& r0, int& r1,
                      int& h0, int& h1) {
  const float ex = s.ex + BOX_MARGIN, ey = s.ey + BOX_MARGIN;
  int u0 = to_px(std::ceil(s.mx - ex - 0.5f)), u1 = to_px(std::floor(s.mx + ex - 0.5f));
  int v0 = to_px(std::ceil(s.my - ey - 0.5f)), v1 = to_px(std::floor(s.my + ey - 0.5f));
  u0 = std::max(u0, x0);
  u1 = std::min(u1, std::min(x0 + TILE, W) - 1);
  v0 = std::max(v0, y0);
  v1 = std::min(v1, std::min(y0 + TILE, H) - 1);
  if (u0 > u1 || v0 > v1) return false;
  r0 = v0 - y0;
  r1 = v1 - y0;
  h0 = (u0 - x0) / LANES;
  h1 = (u1 - x0) / LANES;
  return true;
}

// The 8-pixel halves of tile row `py` that the alpha >= 1/255 ellipse reaches: on the row,
// sigma(dx) = a/2 dx^2 + b dy dx + c/2 dy^2 is a parabola with minimum at dx* = -b dy / a,
// so the reached pixels form one interval. Returns false if the row is not reached. The
// same function is used by forward and backward, so both visit the same pixels.
struct RowGeom {
  float inv_a, schur;  // 1 / a and c - b^2 / a, once per Gaussian
  explicit RowGeom(const Splat& s) : inv_a(1.f / s.a), schur(s.c - s.b * s.b / s.a) {}
};

inline bool row_halves(const Splat& s, const RowGeom& q, float py, int x0, int W, int h0,
                       int h1, int& rh0, int& rh1) {
  const float dy = s.my - py;
  const float smin = 0.5f * dy * dy * q.schur;
  const float slack = s.L - smin;
  if (slack < -1e-4f * (1.f + s.L)) return false;
  const float hw = std::sqrt(std::max(0.f, 2.f * slack * q.inv_a)) + BOX_MARGIN;
  const float xc = s.mx + s.b * dy * q.inv_a;  // pixel-space centre of the interval
  int u0 = to_px(std::ceil(xc - hw - 0.5f)), u1 = to_px(std::floor(xc + hw - 0.5f));
  u0 = std::max(u0, x0);
  u1 = std::min(u1, std::min(x0 + TILE, W) - 1);
  if (u0 > u1) return false;
  rh0 = std::max(h0, (u0 - x0) / LANES);
  rh1 = std::min(h1, (u1 - x0) / LANES);
  return rh0 <= rh1;
}

void pack_splats(const Geometry& g, const float* means2d, const float* conics,
                 const float* opacities, const float* extents, std::vector<Splat>& out) {
  out.resize(g.C * g.N);
  at::parallel_for(0, g.C * g.N, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float o = opacities[i];
      out[i] = Splat{means2d[2 * i], means2d[2 * i + 1], conics[3 * i], conics[3 * i + 1],
                     conics[3 * i + 2], o, extents[2 * i], extents[2 * i + 1],
                     o > 0.f ? std::log(o * 255.f) : -1.f};
    }
  });
}

// Tile binning: per camera, Gaussians sorted by (depth, index) are appended to every tile
// their box touches, so each tile's list is already depth sorted.
void bin_tiles(const Geometry& g, const std::vector<Splat>& splats, const float* depths,
               std::vector<int32_t>& offsets, std::vector<int32_t>& flat) {
  const int64_t total_tiles = g.C * g.NT;
  std::vector<int32_t> counts(total_tiles, 0);
  std::vector<std::vector<int32_t>> orders(g.C);
  std::vector<std::vector<int32_t>> rects(g.C);  // per sorted Gaussian: tx0, tx1, ty0, ty1
  at::parallel_for(0, g.C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      std::vector<int32_t>& order = orders[c];
      std::vector<int32_t>& rect = rects[c];
      const float* dep = depths + c * g.N;
      const Splat* sp = splats.data() + c * g.N;
      for (int32_t i = 0; i < g.N; ++i) {
        if (sp[i].ex > 0.f && sp[i].ey > 0.f) order.push_back(i);
      }
      std::sort(order.begin(), order.end(), [dep](int32_t x, int32_t y) {
        return dep[x] < dep[y] || (dep[x] == dep[y] && x < y);
      });
      rect.resize(order.size() * 4);
      int32_t* cnt = counts.data() + c * g.NT;
      for (size_t k = 0; k < order.size(); ++k) {
        const Splat& s = sp[order[k]];
        const float ex = s.ex + BOX_MARGIN, ey = s.ey + BOX_MARGIN;
        int u0 = std::max(0, to_px(std::ceil(s.mx - ex - 0.5f)));
        int u1 = std::min((int)g.W - 1, to_px(std::floor(s.mx + ex - 0.5f)));
        int v0 = std::max(0, to_px(std::ceil(s.my - ey - 0.5f)));
        int v1 = std::min((int)g.H - 1, to_px(std::floor(s.my + ey - 0.5f)));
        int32_t* r = rect.data() + 4 * k;
        if (u0 > u1 || v0 > v1) {
          r[0] = 0; r[1] = -1; r[2] = 0; r[3] = -1;
          continue;
        }
        r[0] = u0 / TILE; r[1] = u1 / TILE; r[2] = v0 / TILE; r[3] = v1 / TILE;
        for (int ty = r[2]; ty <= r[3]; ++ty)
          for (int tx = r[0]; tx <= r[1]; ++tx) cnt[ty * g.TW + tx]++;
      }
    }
  });
  offsets.assign(total_tiles + 1, 0);
  for (int64_t t = 0; t < total_tiles; ++t) offsets[t + 1] = offsets[t] + counts[t];
  flat.resize(offsets[total_tiles]);
  at::parallel_for(0, g.C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      std::vector<int32_t> cursor(offsets.begin() + c * g.NT, offsets.begin() + (c + 1) * g.NT);
      const std::vector<int32_t>& order = orders[c];
      const std::vector<int32_t>& rect = rects[c];
      for (size_t k = 0; k < order.size(); ++k) {
        const int32_t* r = rect.data() + 4 * k;
        const int32_t id = (int32_t)(c * g.N + order[k]);
        for (int ty = r[2]; ty <= r[3]; ++ty)
          for (int tx = r[0]; tx <= r[1]; ++tx) flat[cursor[ty * g.TW + tx]++] = id;
      }
    }
  });
}

// Runs fn(job) for job in [0, n) on torch's OpenMP threads with dynamic scheduling
// (centre tiles are much heavier than border tiles, a static split would idle a thread).
template <typename Fn>
void parallel_jobs(int64_t n, Fn fn) {
  std::atomic<int64_t> next{0};
  const int64_t nthreads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  at::parallel_for(0, nthreads, 1, [&](int64_t, int64_t) {
    for (int64_t job = next.fetch_add(1); job < n; job = next.fetch_add(1)) fn(job);
  });
}

// parallel_jobs over tiles with the channel count as a compile-time constant where common.
template <typename Tile>
void dispatch_channels(int64_t K, int64_t n, Tile& tile) {
  switch (K) {
    case 4:
      parallel_jobs(n, [&](int64_t j) { tile(std::integral_constant<int, 4>{}, j); });
      break;
    case 7:
      parallel_jobs(n, [&](int64_t j) { tile(std::integral_constant<int, 7>{}, j); });
      break;
    case 10:
      parallel_jobs(n, [&](int64_t j) { tile(std::integral_constant<int, 10>{}, j); });
      break;
    default:
      parallel_jobs(n, [&](int64_t j) { tile(std::integral_constant<int, 0>{}, j); });
  }
}

inline v8f lane_x(int x0, int h) {
  const float b = (float)(x0 + h * LANES) + 0.5f;
  return v8f{b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7};
}

inline v8i inside_mask(int x0, int y0, int r, int h, int W, int H) {
  if (y0 + r >= H) return splati(0);
  const int xb = x0 + h * LANES;
  v8i m;
  for (int l = 0; l < LANES; ++l) m[l] = (xb + l < W) ? -1 : 0;
  return m;
}

}  // namespace

std::vector<at::Tensor> rasterize_forward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& depths, const at::Tensor& extents,
    const at::Tensor& backgrounds, int64_t width, int64_t height, bool return_top_ids) {
  const Geometry g = make_geometry(means2d, colors, width, height);

  std::vector<Splat> splats;
  pack_splats(g, means2d.data_ptr<float>(), conics.data_ptr<float>(),
              opacities.data_ptr<float>(), extents.data_ptr<float>(), splats);
  std::vector<int32_t> offsets, flat;
  bin_tiles(g, splats, depths.data_ptr<float>(), offsets, flat);

  auto fopt = means2d.options();
  auto render = at::empty({g.C, g.H, g.W, g.K}, fopt);
  auto T_final = at::empty({g.C, g.H, g.W}, fopt);
  auto last = at::empty({g.C, g.H, g.W}, fopt.dtype(at::kInt));
  auto top = return_top_ids ? at::empty({g.C, g.H, g.W}, fopt.dtype(at::kLong))
                            : at::empty({0}, fopt.dtype(at::kLong));
  auto offsets_t = at::from_blob(offsets.data(), {(int64_t)offsets.size()},
                                    at::kInt).clone();
  auto flat_t = flat.empty()
                    ? at::empty({0}, fopt.dtype(at::kInt))
                    : at::from_blob(flat.data(), {(int64_t)flat.size()}, at::kInt).clone();

  const float* col = colors.data_ptr<float>();
  const float* bg = backgrounds.numel() ? backgrounds.data_ptr<float>() : nullptr;
  float* out = render.data_ptr<float>();
  float* Tout = T_final.data_ptr<float>();
  int32_t* last_out = last.data_ptr<int32_t>();
  int64_t* top_out = return_top_ids ? top.data_ptr<int64_t>() : nullptr;
  const int64_t K = g.K;

  // The tile body is instantiated for common channel counts (rgb+depth, +3, +6 features)
  // so the channel loops unroll with K known at compile time; KC = 0 is the generic body.
  auto tile = [&](auto kc, int64_t job) {
    constexpr int KC = decltype(kc)::value;
    const int64_t K = KC > 0 ? KC : g.K;
    thread_local std::vector<v8f> acc_heap;
    v8f acc_stack[KC > 0 ? KC * SLOTS : 1];
    v8f* acc = acc_stack;
    if constexpr (KC == 0) {
      acc_heap.resize(K * SLOTS);
      acc = acc_heap.data();
    }
    for (int64_t q = 0; q < K * SLOTS; ++q) acc[q] = splat(0.f);
    v8f T[SLOTS], topw[SLOTS];
    v8i active[SLOTS], lastv[SLOTS], topid[SLOTS];
    const int64_t c = job / g.NT, t = job % g.NT;
    const int x0 = (int)(t % g.TW) * TILE, y0 = (int)(t / g.TW) * TILE;
    int n_active = 0;
    for (int r = 0; r < TILE; ++r)
      for (int h = 0; h < 2; ++h) {
        const int i = 2 * r + h;
        T[i] = splat(1.f);
        topw[i] = splat(0.f);
        active[i] = inside_mask(x0, y0, r, h, (int)g.W, (int)g.H);
        lastv[i] = splati(-1);
        topid[i] = splati(-1);
        n_active += __builtin_popcount(movemask(active[i]));
      }
    const v8f px[2] = {lane_x(x0, 0), lane_x(x0, 1)};
    const int32_t start = offsets[job], end = offsets[job + 1];
    for (int32_t idx = start; idx < end && n_active > 0; ++idx) {
      if (idx + PREFETCH < end) prefetch_splat(splats, col, K, flat[idx + PREFETCH]);
      const int32_t cg = flat[idx];
      const Splat& s = splats[cg];
      int r0, r1, h0, h1;
      if (!local_box(s, x0, y0, (int)g.W, (int)g.H, r0, r1, h0, h1)) continue;
      const RowGeom q(s);
      const float* cgc = col + (int64_t)cg * K;
      const int32_t gid = (int32_t)(cg % g.N);
      for (int r = r0; r <= r1; ++r) {
        const float py = (float)(y0 + r) + 0.5f;
        int rh0, rh1;
        if (!row_halves(s, q, py, x0, (int)g.W, h0, h1, rh0, rh1)) continue;
        for (int h = rh0; h <= rh1; ++h) {
          const int i = 2 * r + h;
          if (!movemask(active[i])) continue;  // all 8 pixels already terminated
          const Eval e = evaluate(s, px[h], py);
          const v8i m = e.ok & active[i];
          if (!movemask(m)) continue;
          const v8f Tc = T[i];
          const v8f nT = Tc * (splat(1.f) - e.alpha);
          const v8i term = m & (nT <= splat(T_MIN));
          const v8i contrib = m & ~term;
          const v8f w = select(contrib, e.alpha * Tc, splat(0.f));
          for (int64_t k = 0; k < K; ++k) acc[k * SLOTS + i] += w * splat(cgc[k]);
          T[i] = select(contrib, nT, Tc);
          lastv[i] = selecti(contrib, splati(idx), lastv[i]);
          active[i] = active[i] & ~term;
          const int tm = movemask(term);
          if (tm) n_active -= __builtin_popcount(tm);
          if (top_out) {
            const v8i better = w > topw[i];
            topw[i] = select(better, w, topw[i]);
            topid[i] = selecti(better, splati(gid), topid[i]);
          }
        }
      }
    }
    const float* bgc = bg ? bg + c * K : nullptr;
    for (int r = 0; r < TILE && y0 + r < g.H; ++r) {
      for (int h = 0; h < 2; ++h) {
        const int i = 2 * r + h;
        for (int l = 0; l < LANES; ++l) {
          const int x = x0 + h * LANES + l;
          if (x >= g.W) break;
          const int64_t p = (c * g.H + (y0 + r)) * g.W + x;
          const float Tp = T[i][l];
          float* o = out + p * K;
          for (int64_t k = 0; k < K; ++k)
            o[k] = acc[k * SLOTS + i][l] + (bgc ? Tp * bgc[k] : 0.f);
          Tout[p] = Tp;
          last_out[p] = lastv[i][l];
          if (top_out) top_out[p] = topid[i][l];
        }
      }
    }
  };
  dispatch_channels(g.K, g.C * g.NT, tile);
  return {render, T_final, last, top, offsets_t, flat_t};
}

std::vector<at::Tensor> rasterize_backward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& extents,
    const at::Tensor& backgrounds, const at::Tensor& T_final, const at::Tensor& last,
    const at::Tensor& tile_offsets, const at::Tensor& flat_ids,
    const at::Tensor& v_render, const at::Tensor& v_alpha, int64_t width, int64_t height) {
  const Geometry g = make_geometry(means2d, colors, width, height);
  const int64_t K = g.K;
  const int64_t REC = 6 + K;  // per-intersection record: mx, my, a, b, c, o, colors[K]

  std::vector<Splat> splats;
  pack_splats(g, means2d.data_ptr<float>(), conics.data_ptr<float>(),
              opacities.data_ptr<float>(), extents.data_ptr<float>(), splats);
  const int32_t* offsets = tile_offsets.data_ptr<int32_t>();
  const int32_t* flat = flat_ids.data_ptr<int32_t>();
  const int64_t n_isect = flat_ids.numel();
  // Every record is written below (computed, or zeroed when the Gaussian does not reach a
  // pixel of the tile), so the buffer is left uninitialised.
  std::unique_ptr<float[]> rec_buf(new float[std::max<int64_t>(1, n_isect * REC)]);
  float* const rec = rec_buf.get();

  const float* col = colors.data_ptr<float>();
  const float* bg = backgrounds.numel() ? backgrounds.data_ptr<float>() : nullptr;
  const float* Tin = T_final.data_ptr<float>();
  const int32_t* last_in = last.data_ptr<int32_t>();
  const float* vr = v_render.data_ptr<float>();
  const float* va = v_alpha.data_ptr<float>();

  auto tile = [&](auto kc, int64_t job) {
    constexpr int KC = decltype(kc)::value;
    const int64_t K = KC > 0 ? KC : g.K;
    const int64_t c = job / g.NT, t = job % g.NT;
    const int x0 = (int)(t % g.TW) * TILE, y0 = (int)(t / g.TW) * TILE;
    const int32_t start = offsets[job], end = offsets[job + 1];
    if (start == end) return;
    thread_local std::vector<v8f> vout_heap, gcol_heap;
    v8f vout_stack[KC > 0 ? KC * SLOTS : 1], gcol_stack[KC > 0 ? KC : 1];
    v8f *vout = vout_stack, *gcol = gcol_stack;
    if constexpr (KC == 0) {
      vout_heap.resize(K * SLOTS);
      gcol_heap.resize(K);
      vout = vout_heap.data();
      gcol = gcol_heap.data();
    }
    for (int64_t q = 0; q < K * SLOTS; ++q) vout[q] = splat(0.f);
    // SV = sum_k S_k v_out_k, where S_k is the colour composited behind the current
    // Gaussian: dL/dalpha_i needs only this dot product, not S itself.
    v8f T[SLOTS], Tf[SLOTS], vA_out[SLOTS], SV[SLOTS];
    v8i lastv[SLOTS];
    const float* bgc = bg ? bg + c * K : nullptr;
    int32_t max_last = -1;
    for (int r = 0; r < TILE; ++r) {
      for (int h = 0; h < 2; ++h) {
        const int i = 2 * r + h;
        T[i] = splat(1.f);
        vA_out[i] = splat(0.f);
        SV[i] = splat(0.f);
        lastv[i] = splati(-1);
        if (y0 + r >= g.H) continue;
        for (int l = 0; l < LANES; ++l) {
          const int x = x0 + h * LANES + l;
          if (x >= g.W) break;
          const int64_t p = (c * g.H + (y0 + r)) * g.W + x;
          T[i][l] = Tin[p];
          lastv[i][l] = last_in[p];
          max_last = std::max(max_last, last_in[p]);
          float bgdot = 0.f;
          for (int64_t k = 0; k < K; ++k) {
            vout[k * SLOTS + i][l] = vr[p * K + k];
            if (bgc) bgdot += bgc[k] * vr[p * K + k];
          }
          // d(out)/d(alpha_i) through T_final: alpha channel (+) and background (-).
          vA_out[i][l] = va[p] - bgdot;
        }
        Tf[i] = T[i];
      }
    }
    // Records after the last contributor of every pixel stay zero.
    for (int32_t idx = std::max(start, max_last + 1); idx < end; ++idx)
      std::memset(rec + (int64_t)idx * REC, 0, sizeof(float) * REC);
    const v8f px[2] = {lane_x(x0, 0), lane_x(x0, 1)};
    for (int32_t idx = max_last; idx >= start; --idx) {
      if (idx - PREFETCH >= start) prefetch_splat(splats, col, K, flat[idx - PREFETCH]);
      float* out = rec + (int64_t)idx * REC;
      const int32_t cg = flat[idx];
      const Splat& s = splats[cg];
      int r0, r1, h0, h1;
      if (!local_box(s, x0, y0, (int)g.W, (int)g.H, r0, r1, h0, h1)) {
        std::memset(out, 0, sizeof(float) * REC);
        continue;
      }
      const RowGeom q(s);
      const float* cgc = col + (int64_t)cg * K;
      v8f gmx = splat(0.f), gmy = splat(0.f), ga = splat(0.f), gb = splat(0.f),
          gc = splat(0.f), go = splat(0.f);
      for (int64_t k = 0; k < K; ++k) gcol[k] = splat(0.f);
      const v8i vidx = splati(idx);
      for (int r = r0; r <= r1; ++r) {
        const float py = (float)(y0 + r) + 0.5f;
        const float dy = s.my - py;
        int rh0, rh1;
        if (!row_halves(s, q, py, x0, (int)g.W, h0, h1, rh0, rh1)) continue;
        for (int h = rh0; h <= rh1; ++h) {
          const int i = 2 * r + h;
          const v8i reach = lastv[i] >= vidx;  // pixels whose list extends to this Gaussian
          if (!movemask(reach)) continue;
          const Eval e = evaluate(s, px[h], py);
          const v8i m = e.ok & reach;
          if (!movemask(m)) continue;
          const v8f ra = vrcp(splat(1.f) - e.alpha);
          const v8f Tn = select(m, T[i] * ra, T[i]);  // transmittance in front of this Gaussian
          const v8f w = select(m, e.alpha * Tn, splat(0.f));
          v8f CV = splat(0.f);  // sum_k c_k v_out_k
          for (int64_t k = 0; k < K; ++k) {
            const v8f vo = vout[k * SLOTS + i];
            CV += splat(cgc[k]) * vo;
            gcol[k] += w * vo;
          }
          // dL/dalpha = sum_k (c_k T_i - S_k / (1 - alpha)) v_k + T_final/(1 - alpha) (v_a - bg.v)
          const v8f vA = CV * Tn + ra * (Tf[i] * vA_out[i] - SV[i]);
          SV[i] += w * CV;
          T[i] = Tn;
          // alpha = min(0.99, o * vis): no gradient where the clamp is active.
          const v8i grad_ok = m & (splat(s.o) * e.vis <= splat(ALPHA_MAX));
          const v8f vsig = select(grad_ok, splat(-s.o) * e.vis * vA, splat(0.f));
          go += select(grad_ok, e.vis * vA, splat(0.f));
          const v8f dx = e.dx;
          ga += splat(0.5f) * vsig * dx * dx;
          gb += vsig * dx * splat(dy);
          gc += splat(0.5f * dy * dy) * vsig;
          gmx += vsig * (splat(s.a) * dx + splat(s.b * dy));
          gmy += vsig * (splat(s.b) * dx + splat(s.c * dy));
        }
      }
      out[0] = hsum(gmx);
      out[1] = hsum(gmy);
      out[2] = hsum(ga);
      out[3] = hsum(gb);
      out[4] = hsum(gc);
      out[5] = hsum(go);
      for (int64_t k = 0; k < K; ++k) out[6 + k] = hsum(gcol[k]);
    }
  };
  dispatch_channels(g.K, g.C * g.NT, tile);

  // Sum the per-intersection records per Gaussian. Each record is read by exactly one
  // thread: threads own disjoint Gaussian ranges [b, e) of c*N + g.
  auto fopt = means2d.options();
  auto v_means2d = at::zeros({g.C, g.N, 2}, fopt);
  auto v_conics = at::zeros({g.C, g.N, 3}, fopt);
  auto v_colors = at::zeros({g.C, g.N, K}, fopt);
  auto v_opac = at::zeros({g.C, g.N}, fopt);
  float* vm = v_means2d.data_ptr<float>();
  float* vc = v_conics.data_ptr<float>();
  float* vcol = v_colors.data_ptr<float>();
  float* vo = v_opac.data_ptr<float>();
  const int64_t nthreads = std::max<int64_t>(1, at::get_num_threads());
  at::parallel_for(0, nthreads, 1, [&](int64_t tb, int64_t te) {
    for (int64_t th = tb; th < te; ++th) {
      const int64_t lo = g.C * g.N * th / nthreads, hi = g.C * g.N * (th + 1) / nthreads;
      for (int64_t idx = 0; idx < n_isect; ++idx) {
        const int64_t cg = flat[idx];
        if (cg < lo || cg >= hi) continue;
        const float* r = rec + idx * REC;
        vm[2 * cg] += r[0];
        vm[2 * cg + 1] += r[1];
        vc[3 * cg] += r[2];
        vc[3 * cg + 1] += r[3];
        vc[3 * cg + 2] += r[4];
        vo[cg] += r[5];
        float* dst = vcol + cg * K;
        for (int64_t k = 0; k < K; ++k) dst[k] += r[6 + k];
      }
    }
  });
  return {v_means2d, v_conics, v_colors, v_opac};
}

namespace {
void check_input(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(!t.is_cuda(), "instgs native ops are CPU-only (", name,
              " is on CUDA); use backend='gsplat' for CUDA tensors");
  TORCH_CHECK(t.scalar_type() == dtype, name, " has dtype ", t.scalar_type(), ", expected ",
              dtype);
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}
}  // namespace

std::vector<at::Tensor> rasterize_forward(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& depths, const at::Tensor& extents,
    const at::Tensor& backgrounds, int64_t width, int64_t height, bool return_top_ids) {
  check_input(means2d, "means2d", at::kFloat);
  check_input(conics, "conics", at::kFloat);
  check_input(colors, "colors", at::kFloat);
  check_input(opacities, "opacities", at::kFloat);
  check_input(depths, "depths", at::kFloat);
  check_input(extents, "extents", at::kFloat);
  check_input(backgrounds, "backgrounds", at::kFloat);
  const int64_t C = means2d.size(0), N = means2d.size(1);
  TORCH_CHECK(means2d.dim() == 3 && means2d.size(2) == 2, "means2d must be [C, N, 2]");
  TORCH_CHECK(conics.sizes() == at::IntArrayRef({C, N, 3}), "conics must be [C, N, 3]");
  TORCH_CHECK(colors.dim() == 3 && colors.size(0) == C && colors.size(1) == N,
              "colors must be [C, N, K]");
  TORCH_CHECK(opacities.sizes() == at::IntArrayRef({C, N}), "opacities must be [C, N]");
  TORCH_CHECK(depths.sizes() == at::IntArrayRef({C, N}), "depths must be [C, N]");
  TORCH_CHECK(extents.sizes() == at::IntArrayRef({C, N, 2}), "extents must be [C, N, 2]");
  TORCH_CHECK(backgrounds.numel() == 0 ||
                  backgrounds.sizes() == at::IntArrayRef({C, colors.size(2)}),
              "backgrounds must be empty or [C, K]");
  TORCH_CHECK(width > 0 && height > 0, "width and height must be positive");
  TORCH_CHECK(C * N < (int64_t(1) << 31), "C * N must fit in int32");
  return rasterize_forward_cpu(means2d, conics, colors, opacities, depths, extents,
                               backgrounds, width, height, return_top_ids);
}

std::vector<at::Tensor> rasterize_backward(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& extents,
    const at::Tensor& backgrounds, const at::Tensor& T_final, const at::Tensor& last,
    const at::Tensor& tile_offsets, const at::Tensor& flat_ids,
    const at::Tensor& v_render, const at::Tensor& v_alpha, int64_t width, int64_t height) {
  check_input(means2d, "means2d", at::kFloat);
  check_input(conics, "conics", at::kFloat);
  check_input(colors, "colors", at::kFloat);
  check_input(opacities, "opacities", at::kFloat);
  check_input(extents, "extents", at::kFloat);
  check_input(backgrounds, "backgrounds", at::kFloat);
  check_input(T_final, "T_final", at::kFloat);
  check_input(last, "last", at::kInt);
  check_input(tile_offsets, "tile_offsets", at::kInt);
  check_input(flat_ids, "flat_ids", at::kInt);
  check_input(v_render, "v_render", at::kFloat);
  check_input(v_alpha, "v_alpha", at::kFloat);
  const int64_t C = means2d.size(0);
  TORCH_CHECK(v_render.sizes() == at::IntArrayRef({C, height, width, colors.size(2)}),
              "v_render must be [C, H, W, K]");
  TORCH_CHECK(v_alpha.sizes() == at::IntArrayRef({C, height, width}),
              "v_alpha must be [C, H, W]");
  const int64_t NT = ((width + TILE - 1) / TILE) * ((height + TILE - 1) / TILE);
  TORCH_CHECK(tile_offsets.numel() == C * NT + 1, "tile_offsets does not match the image");
  return rasterize_backward_cpu(means2d, conics, colors, opacities, extents, backgrounds,
                                T_final, last, tile_offsets, flat_ids, v_render, v_alpha,
                                width, height);
}

}  // namespace instgs
