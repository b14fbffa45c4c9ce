// instgs native EWA projection (3DGS / gsplat "classic"), fused forward and backward.
// Same math as instgs/render/projection.py (the readable twin it is tested against).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace instgs {

// means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], viewmats [C,4,4], Ks [C,3,3],
// all float32. Returns {means2d [C,N,2], conics [C,N,3], depths [C,N], extents [C,N,2],
// radii [C,N] int32}; culled entries are zero.
std::vector<at::Tensor> project_forward(const at::Tensor& means, const at::Tensor& quats,
                                        const at::Tensor& scales, const at::Tensor& opacities,
                                        const at::Tensor& viewmats, const at::Tensor& Ks,
                                        int64_t width, int64_t height, double near_plane,
                                        double eps2d);

// Gradients of means2d / conics / depths back to {v_means [N,3], v_quats [N,4],
// v_scales [N,3]} (opacities only enter culling and the box, which are not differentiable).
std::vector<at::Tensor> project_backward(const at::Tensor& means, const at::Tensor& quats,
                                         const at::Tensor& scales, const at::Tensor& viewmats,
                                         const at::Tensor& Ks, const at::Tensor& radii,
                                         int64_t width, int64_t height, double eps2d,
                                         const at::Tensor& v_means2d, const at::Tensor& v_conics,
                                         const at::Tensor& v_depths);

}  // namespace instgs
