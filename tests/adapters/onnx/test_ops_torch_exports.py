"""torch exports through from_onnx (issue 18): F.interpolate (Resize; torch's exporter cannot
export antialias), F.pad (Pad; negative pads crop), pixel shuffles and permute (Transpose),
against the live torch module and ``onnx.reference`` (onnxruntime for negative pads, which the
reference refuses)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import convmatrix as cm

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from tests.adapters.onnx.helpers import affine, reference, runtime  # noqa: E402

nn = torch.nn
F = torch.nn.functional


class Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def export(module, shape, opset):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(1, *shape), buffer, dynamo=False,
                          opset_version=opset)
    return onnx.load_model_from_string(buffer.getvalue())


MODULES = {
    "nearest x2": (lambda: nn.Upsample(scale_factor=2, mode="nearest"), (2, 3, 4)),
    "nearest size": (lambda: nn.Upsample(size=(6, 8), mode="nearest"), (1, 3, 4)),
    "bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4)),
    "bilinear align_corners": (lambda: nn.Upsample(size=(5, 7), mode="bilinear",
                                                   align_corners=True), (1, 3, 4)),
    "bicubic": (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), (1, 3, 4)),
    "bicubic align_corners": (lambda: nn.Upsample(size=(7, 6), mode="bicubic",
                                                  align_corners=True), (1, 4, 3)),
    "bilinear down": (lambda: Lambda(lambda x: F.interpolate(x, size=(3, 2), mode="bilinear")),
                      (1, 6, 5)),
    "pad reflect": (lambda: nn.ReflectionPad2d((1, 2, 2, 0)), (2, 4, 5)),
    "pad replicate": (lambda: nn.ReplicationPad2d((2, 0, 1, 3)), (1, 3, 4)),
    "pad constant": (lambda: nn.ConstantPad2d((1, 1, 0, 2), 1.5), (2, 3, 3)),
    "pad crop": (lambda: Lambda(lambda x: F.pad(x, (-1, 2, 1, -1))), (1, 4, 5)),
    "pixel shuffle": (lambda: nn.PixelShuffle(2), (8, 2, 3)),
    "pixel unshuffle": (lambda: nn.PixelUnshuffle(2), (2, 4, 6)),
    "permute": (lambda: Lambda(lambda x: x.permute(0, 3, 1, 2)), (2, 3, 4)),
}


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("opset", [11, 18])
def test_torch_exports_match_torch_and_the_reference(name, opset):
    factory, shape = MODULES[name]
    module = factory().eval()
    proto = export(module, shape, opset)
    layer = cm.from_onnx(proto)
    x = np.random.default_rng(opset).standard_normal((1, *shape))
    got = affine(layer, x[0])
    if name == "pad crop":  # negative pads: numpy.pad (the reference) refuses them
        np.testing.assert_allclose(got, runtime(proto, x).ravel(), atol=1e-5)
    else:
        np.testing.assert_allclose(got, reference(proto, x).ravel(), atol=1e-6)
    with torch.no_grad():
        want = module.double()(torch.from_numpy(x)).numpy().ravel()
    np.testing.assert_allclose(got, want, atol=1e-6)
