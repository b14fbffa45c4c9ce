// Python bindings for every instgs native op (one binding file, pytorch3d layout).
// Built on first use by instgs/_native.py with torch.utils.cpp_extension.load.
#include <torch/extension.h>

#include "projection/projection.h"
#include "rasterize/rasterize.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "instgs native CPU kernels (EWA projection and tile rasterizer, forward/backward)";
  m.def("rasterize_forward", &instgs::rasterize_forward,
        "Tile-binned front-to-back compositing of projected Gaussians (CPU).",
        py::arg("means2d"), py::arg("conics"), py::arg("colors"), py::arg("opacities"),
        py::arg("depths"), py::arg("extents"), py::arg("backgrounds"), py::arg("width"),
        py::arg("height"), py::arg("return_top_ids"));
  m.def("project_forward", &instgs::project_forward,
        "Fused EWA projection of 3D Gaussians (CPU).", py::arg("means"), py::arg("quats"),
        py::arg("scales"), py::arg("opacities"), py::arg("viewmats"), py::arg("Ks"),
        py::arg("width"), py::arg("height"), py::arg("near_plane"), py::arg("eps2d"));
  m.def("project_backward", &instgs::project_backward,
        "Gradients of project_forward w.r.t. means, quats, scales (CPU).", py::arg("means"),
        py::arg("quats"), py::arg("scales"), py::arg("viewmats"), py::arg("Ks"),
        py::arg("radii"), py::arg("width"), py::arg("height"), py::arg("eps2d"),
        py::arg("v_means2d"), py::arg("v_conics"), py::arg("v_depths"));
  m.def("rasterize_backward", &instgs::rasterize_backward,
        "Gradients of rasterize_forward w.r.t. means2d, conics, colors, opacities (CPU).",
        py::arg("means2d"), py::arg("conics"), py::arg("colors"), py::arg("opacities"),
        py::arg("extents"), py::arg("backgrounds"), py::arg("T_final"), py::arg("last"),
        py::arg("tile_offsets"), py::arg("flat_ids"), py::arg("v_render"), py::arg("v_alpha"),
        py::arg("width"), py::arg("height"));
}
