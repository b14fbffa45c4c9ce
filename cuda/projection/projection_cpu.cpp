// instgs CPU EWA projection, fused forward + hand-written backward (gsplat-style "fully
// fused projection"). One pass over the Gaussians instead of ~80 PyTorch ops, which matters on
// small shared CPUs where every parallel PyTorch op pays a thread barrier.
//
// Math (docs/rasterizer.md), per camera (W, t, fx, fy, cx, cy) and Gaussian (mu, q, s):
//   R = rotmat(q / |q|), M = R diag(s), Mc = W M, p = W mu + t, rz = 1 / p.z
//   ux = clamp(p.x rz, -lim_x_neg, lim_x_pos), uy likewise (gsplat persp_proj, 1.3x fov)
//   P0 = fx rz (Mc_0 - ux Mc_2), P1 = fy rz (Mc_1 - uy Mc_2)      (rows of J W M)
//   a = P0.P0 + eps2d, b = P0.P1, c = P1.P1 + eps2d,  conic = (c, -b, a) / (a c - b^2)
//   means2d = (fx p.x rz + cx, fy p.y rz + cy), depth = p.z
// Reference twin: instgs/render/projection.py (tests/render/test_projection_native.py).

#include "projection.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace instgs {
namespace {

constexpr float ALPHA_MIN = 1.0f / 255.0f;

struct Cam {
  float W[9], t[3], fx, fy, cx, cy, limxp, limxn, limyp, limyn;
};

Cam load_cam(const float* vm, const float* K, int64_t width, int64_t height) {
  Cam c;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) c.W[3 * i + j] = vm[4 * i + j];
    c.t[i] = vm[4 * i + 3];
  }
  c.fx = K[0];
  c.fy = K[4];
  c.cx = K[2];
  c.cy = K[5];
  const float tanx = 0.5f * (float)width / c.fx, tany = 0.5f * (float)height / c.fy;
  c.limxp = ((float)width - c.cx) / c.fx + 0.3f * tanx;
  c.limxn = c.cx / c.fx + 0.3f * tanx;
  c.limyp = ((float)height - c.cy) / c.fy + 0.3f * tany;
  c.limyn = c.cy / c.fy + 0.3f * tany;
  return c;
}

// Everything the backward needs, recomputed there rather than stored.
struct Fwd {
  float qn[4], qnorm, R[9], M[9], Mc[9], p[3], rz, ux, uy, s0, s1, D0[3], D1[3], P0[3], P1[3];
  bool ux_free, uy_free;  // false where the Jacobian clamp is active
  float a, b, c, det;
};

inline void forward_one(const float* mu, const float* q, const float* s, const Cam& cam,
                        float eps2d, Fwd& f) {
  f.qnorm = std::max(std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]), 1e-12f);
  for (int i = 0; i < 4; ++i) f.qn[i] = q[i] / f.qnorm;
  const float w = f.qn[0], x = f.qn[1], y = f.qn[2], z = f.qn[3];
  float* R = f.R;
  R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z); R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z); R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y); R[7] = 2 * (y * z + w * x); R[8] = 1 - 2 * (x * x + y * y);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) f.M[3 * i + j] = R[3 * i + j] * s[j];
  for (int i = 0; i < 3; ++i) {
    f.p[i] = cam.W[3 * i] * mu[0] + cam.W[3 * i + 1] * mu[1] + cam.W[3 * i + 2] * mu[2] +
             cam.t[i];
    for (int j = 0; j < 3; ++j)
      f.Mc[3 * i + j] = cam.W[3 * i] * f.M[j] + cam.W[3 * i + 1] * f.M[3 + j] +
                        cam.W[3 * i + 2] * f.M[6 + j];
  }
  f.rz = 1.f / f.p[2];
  const float xr = f.p[0] * f.rz, yr = f.p[1] * f.rz;
  f.ux = std::min(cam.limxp, std::max(-cam.limxn, xr));
  f.uy = std::min(cam.limyp, std::max(-cam.limyn, yr));
  f.ux_free = (xr >= -cam.limxn) && (xr <= cam.limxp);
  f.uy_free = (yr >= -cam.limyn) && (yr <= cam.limyp);
  f.s0 = cam.fx * f.rz;
  f.s1 = cam.fy * f.rz;
  for (int j = 0; j < 3; ++j) {
    f.D0[j] = f.Mc[j] - f.ux * f.Mc[6 + j];
    f.D1[j] = f.Mc[3 + j] - f.uy * f.Mc[6 + j];
    f.P0[j] = f.s0 * f.D0[j];
    f.P1[j] = f.s1 * f.D1[j];
  }
  f.a = f.P0[0] * f.P0[0] + f.P0[1] * f.P0[1] + f.P0[2] * f.P0[2] + eps2d;
  f.b = f.P0[0] * f.P1[0] + f.P0[1] * f.P1[1] + f.P0[2] * f.P1[2];
  f.c = f.P1[0] * f.P1[0] + f.P1[1] * f.P1[1] + f.P1[2] * f.P1[2] + eps2d;
  f.det = f.a * f.c - f.b * f.b;
}

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(!t.is_cuda(), "instgs native ops are CPU-only (", name, " is on CUDA)");
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

}  // namespace

std::vector<at::Tensor> project_forward(const at::Tensor& means, const at::Tensor& quats,
                                        const at::Tensor& scales, const at::Tensor& opacities,
                                        const at::Tensor& viewmats, const at::Tensor& Ks,
                                        int64_t width, int64_t height, double near_plane,
                                        double eps2d) {
  for (auto& [t, n] : {std::pair<const at::Tensor&, const char*>{means, "means"},
                       {quats, "quats"}, {scales, "scales"}, {opacities, "opacities"},
                       {viewmats, "viewmats"}, {Ks, "Ks"}})
    check(t, n);
  const int64_t N = means.size(0), C = viewmats.size(0);
  TORCH_CHECK(means.sizes() == at::IntArrayRef({N, 3}) && quats.sizes() == at::IntArrayRef({N, 4}) &&
                  scales.sizes() == at::IntArrayRef({N, 3}) && opacities.sizes() == at::IntArrayRef({N}),
              "means/quats/scales/opacities must be [N,3]/[N,4]/[N,3]/[N]");
  TORCH_CHECK(viewmats.sizes() == at::IntArrayRef({C, 4, 4}) && Ks.sizes() == at::IntArrayRef({C, 3, 3}),
              "viewmats/Ks must be [C,4,4]/[C,3,3]");
  auto opt = means.options();
  auto means2d = at::zeros({C, N, 2}, opt);
  auto conics = at::zeros({C, N, 3}, opt);
  auto depths = at::zeros({C, N}, opt);
  auto extents = at::zeros({C, N, 2}, opt);
  auto radii = at::zeros({C, N}, opt.dtype(at::kInt));
  const float *mu = means.data_ptr<float>(), *q = quats.data_ptr<float>(),
              *s = scales.data_ptr<float>(), *o = opacities.data_ptr<float>();
  float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(),
        *dp = depths.data_ptr<float>(), *ex = extents.data_ptr<float>();
  int32_t* rad = radii.data_ptr<int32_t>();
  const float W = (float)width, H = (float)height, near = (float)near_plane,
              eps = (float)eps2d;
  for (int64_t c = 0; c < C; ++c) {
    const Cam cam = load_cam(viewmats.data_ptr<float>() + 16 * c, Ks.data_ptr<float>() + 9 * c,
                             width, height);
    at::parallel_for(0, N, 2048, [&](int64_t b, int64_t e) {
      Fwd f;
      for (int64_t n = b; n < e; ++n) {
        if (!(o[n] >= ALPHA_MIN)) continue;
        forward_one(mu + 3 * n, q + 4 * n, s + 3 * n, cam, eps, f);
        if (!(f.p[2] >= near) || !(f.det > 0.f)) continue;
        const float mx = cam.fx * f.p[0] * f.rz + cam.cx, my = cam.fy * f.p[1] * f.rz + cam.cy;
        const float extend = std::sqrt(2.f * std::log(o[n] / ALPHA_MIN));
        const float ex_ = extend * std::sqrt(f.a), ey_ = extend * std::sqrt(f.c);
        if (!(mx + ex_ > 0.f && mx - ex_ < W && my + ey_ > 0.f && my - ey_ < H)) continue;
        const int64_t i = c * N + n;
        m2[2 * i] = mx;
        m2[2 * i + 1] = my;
        cn[3 * i] = f.c / f.det;
        cn[3 * i + 1] = -f.b / f.det;
        cn[3 * i + 2] = f.a / f.det;
        dp[i] = f.p[2];
        ex[2 * i] = ex_;
        ex[2 * i + 1] = ey_;
        const float mid = 0.5f * (f.a + f.c);
        const float lam = mid + std::sqrt(std::max(mid * mid - f.det, 0.f));
        rad[i] = (int32_t)std::ceil(3.f * std::sqrt(lam));
      }
    });
  }
  return {means2d, conics, depths, extents, radii};
}

std::vector<at::Tensor> project_backward(const at::Tensor& means, const at::Tensor& quats,
                                         const at::Tensor& scales, const at::Tensor& viewmats,
                                         const at::Tensor& Ks, const at::Tensor& radii,
                                         int64_t width, int64_t height, double eps2d,
                                         const at::Tensor& v_means2d, const at::Tensor& v_conics,
                                         const at::Tensor& v_depths) {
  for (auto& [t, n] : {std::pair<const at::Tensor&, const char*>{means, "means"},
                       {quats, "quats"}, {scales, "scales"}, {viewmats, "viewmats"},
                       {Ks, "Ks"}, {v_means2d, "v_means2d"}, {v_conics, "v_conics"},
                       {v_depths, "v_depths"}})
    check(t, n);
  TORCH_CHECK(radii.scalar_type() == at::kInt && radii.is_contiguous(), "radii must be int32");
  const int64_t N = means.size(0), C = viewmats.size(0);
  auto opt = means.options();
  auto v_means = at::zeros({N, 3}, opt);
  auto v_quats = at::zeros({N, 4}, opt);
  auto v_scales = at::zeros({N, 3}, opt);
  const float *mu = means.data_ptr<float>(), *q = quats.data_ptr<float>(),
              *s = scales.data_ptr<float>();
  const float *vm2 = v_means2d.data_ptr<float>(), *vcn = v_conics.data_ptr<float>(),
              *vdp = v_depths.data_ptr<float>();
  const int32_t* rad = radii.data_ptr<int32_t>();
  float *gmu = v_means.data_ptr<float>(), *gq = v_quats.data_ptr<float>(),
        *gs = v_scales.data_ptr<float>();
  std::vector<Cam> cams(C);
  for (int64_t c = 0; c < C; ++c)
    cams[c] = load_cam(viewmats.data_ptr<float>() + 16 * c, Ks.data_ptr<float>() + 9 * c,
                       width, height);
  const float eps = (float)eps2d;
  // Parallel over Gaussians, cameras inside: every output row has one writer.
  at::parallel_for(0, N, 1024, [&](int64_t b, int64_t e) {
    Fwd f;
    for (int64_t n = b; n < e; ++n) {
      float vR[9] = {0}, vs[3] = {0}, vmu[3] = {0};
      bool any = false;
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = c * N + n;
        if (rad[i] <= 0) continue;
        any = true;
        const Cam& cam = cams[c];
        forward_one(mu + 3 * n, q + 4 * n, s + 3 * n, cam, eps, f);
        // conic = (c, -b, a) / det  ->  grads w.r.t. (a, b, c)
        const float gA = vcn[3 * i], gB = vcn[3 * i + 1], gC = vcn[3 * i + 2];
        const float id2 = 1.f / (f.det * f.det);
        const float a = f.a, bb = f.b, cc = f.c;
        const float va = (-cc * cc * gA + bb * cc * gB - bb * bb * gC) * id2;
        const float vb = (2.f * bb * cc * gA - (a * cc + bb * bb) * gB + 2.f * a * bb * gC) * id2;
        const float vc = (-bb * bb * gA + a * bb * gB - a * a * gC) * id2;
        float vP0[3], vP1[3];
        for (int j = 0; j < 3; ++j) {
          vP0[j] = 2.f * va * f.P0[j] + vb * f.P1[j];
          vP1[j] = 2.f * vc * f.P1[j] + vb * f.P0[j];
        }
        // P0 = s0 (Mc0 - ux Mc2), P1 = s1 (Mc1 - uy Mc2)
        float vMc[9], vs0 = 0.f, vs1 = 0.f, vux = 0.f, vuy = 0.f;
        for (int j = 0; j < 3; ++j) {
          vMc[j] = f.s0 * vP0[j];
          vMc[3 + j] = f.s1 * vP1[j];
          vMc[6 + j] = -f.s0 * f.ux * vP0[j] - f.s1 * f.uy * vP1[j];
          vs0 += vP0[j] * f.D0[j];
          vs1 += vP1[j] * f.D1[j];
          vux -= f.s0 * vP0[j] * f.Mc[6 + j];
          vuy -= f.s1 * vP1[j] * f.Mc[6 + j];
        }
        float vp[3] = {0.f, 0.f, vdp[i]};
        float vrz = cam.fx * vs0 + cam.fy * vs1;
        if (f.ux_free) {
          vp[0] += vux * f.rz;
          vrz += vux * f.p[0];
        }
        if (f.uy_free) {
          vp[1] += vuy * f.rz;
          vrz += vuy * f.p[1];
        }
        // means2d = (fx x rz + cx, fy y rz + cy)
        const float gmx = vm2[2 * i], gmy = vm2[2 * i + 1];
        vp[0] += cam.fx * f.rz * gmx;
        vp[1] += cam.fy * f.rz * gmy;
        vrz += cam.fx * f.p[0] * gmx + cam.fy * f.p[1] * gmy;
        vp[2] -= vrz * f.rz * f.rz;
        // p = W mu + t, Mc = W M
        for (int j = 0; j < 3; ++j) {
          vmu[j] += cam.W[j] * vp[0] + cam.W[3 + j] * vp[1] + cam.W[6 + j] * vp[2];
          for (int k = 0; k < 3; ++k) {
            const float vM = cam.W[j] * vMc[k] + cam.W[3 + j] * vMc[3 + k] +
                             cam.W[6 + j] * vMc[6 + k];  // dL/dM[j][k]
            vs[k] += vM * f.R[3 * j + k];
            vR[3 * j + k] += vM * s[3 * n + k];
          }
        }
      }
      if (!any) continue;
      // R(qn) -> qn -> q
      const float w = f.qn[0], x = f.qn[1], y = f.qn[2], z = f.qn[3];
      float vq[4];
      vq[0] = 2.f * (-z * vR[1] + y * vR[2] + z * vR[3] - x * vR[5] - y * vR[6] + x * vR[7]);
      vq[1] = 2.f * (y * vR[1] + z * vR[2] + y * vR[3] - 2.f * x * vR[4] - w * vR[5] +
                     z * vR[6] + w * vR[7] - 2.f * x * vR[8]);
      vq[2] = 2.f * (-2.f * y * vR[0] + x * vR[1] + w * vR[2] + x * vR[3] + z * vR[5] -
                     w * vR[6] + z * vR[7] - 2.f * y * vR[8]);
      vq[3] = 2.f * (-2.f * z * vR[0] - w * vR[1] + x * vR[2] + w * vR[3] - 2.f * z * vR[4] +
                     y * vR[5] + x * vR[6] + y * vR[7]);
      const float dot = w * vq[0] + x * vq[1] + y * vq[2] + z * vq[3];
      for (int k = 0; k < 4; ++k) gq[4 * n + k] = (vq[k] - f.qn[k] * dot) / f.qnorm;
      for (int k = 0; k < 3; ++k) {
        gmu[3 * n + k] = vmu[k];
        gs[3 * n + k] = vs[k];
      }
    }
  });
  return {v_means, v_quats, v_scales};
}

}  // namespace instgs
