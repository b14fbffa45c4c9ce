// instgs native rasterizer: tile binning + alpha compositing of projected 2D Gaussians.
//
// Dispatcher header (pytorch3d layout): the CPU kernel lives in rasterize_cpu.cpp; CUDA
// rendering in instgs goes through gsplat, so there is no .cu twin here and a CUDA tensor
// raises "instgs native ops are CPU-only".
//
// Conventions (docs/rasterizer.md):
//   * tiles are 16x16 pixels, pixel (u, v) has its centre at (u + 0.5, v + 0.5);
//   * conics are (a, b, c) of the inverse 2D covariance [[a, b], [b, c]];
//     sigma = 0.5 (a dx^2 + c dy^2) + b dx dy with d = mean2d - pixel centre;
//   * alpha = min(0.99, opacity * exp(-sigma)); alpha < 1/255 is skipped; a pixel stops
//     (exclusively) at the first Gaussian that would drive its transmittance to <= 1e-4;
//   * per camera, Gaussians are composited front to back by (depth, index).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace instgs {

// Forward pass.
//   means2d   [C, N, 2] float32, pixels
//   conics    [C, N, 3] float32
//   colors    [C, N, K] float32 (any channels: rgb, features, depth ...)
//   opacities [C, N]    float32
//   depths    [C, N]    float32, camera z (sort key only)
//   extents   [C, N, 2] float32, half-widths (px) of the box that holds every pixel with
//                       alpha >= 1/255; a value <= 0 marks the Gaussian culled
//   backgrounds [C, K] float32 or empty
// Returns {render [C,H,W,K], T_final [C,H,W], last [C,H,W] int32 (index into flat_ids of the
//          last contributor, -1 = none), top_ids [C,H,W] int64 (or empty),
//          tile_offsets [C*TH*TW + 1] int32, flat_ids [n_isect] int32 (= c*N + g)}.
std::vector<at::Tensor> rasterize_forward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& depths, const at::Tensor& extents,
    const at::Tensor& backgrounds, int64_t width, int64_t height, bool return_top_ids);

// Backward pass (reverse traversal per pixel, as in the 3DGS CUDA backward).
//   v_render [C,H,W,K], v_alpha [C,H,W]; the rest are the forward inputs/outputs.
// Returns {v_means2d [C,N,2], v_conics [C,N,3], v_colors [C,N,K], v_opacities [C,N]}.
std::vector<at::Tensor> rasterize_backward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& extents,
    const at::Tensor& backgrounds, const at::Tensor& T_final, const at::Tensor& last,
    const at::Tensor& tile_offsets, const at::Tensor& flat_ids,
    const at::Tensor& v_render, const at::Tensor& v_alpha, int64_t width, int64_t height);

// Dispatchers: check devices/dtypes, then call the CPU kernel.
std::vector<at::Tensor> rasterize_forward(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& depths, const at::Tensor& extents,
    const at::Tensor& backgrounds, int64_t width, int64_t height, bool return_top_ids);

std::vector<at::Tensor> rasterize_backward(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
    const at::Tensor& opacities, const at::Tensor& extents,
    const at::Tensor& backgrounds, const at::Tensor& T_final, const at::Tensor& last,
    const at::Tensor& tile_offsets, const at::Tensor& flat_ids,
    const at::Tensor& v_render, const at::Tensor& v_alpha, int64_t width, int64_t height);

}  // namespace instgs
