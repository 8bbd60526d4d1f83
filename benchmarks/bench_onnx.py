"""``from_onnx`` and ``linearize`` of an ONNX export against the same on the torch module.

The network (issue 18): four 64-channel 3×3 convolutions with BatchNorm (eval) and a residual
add over the last two, at 56×56 — linear, for ``from_onnx`` vs ``from_torch`` (the time to read
the model and build the whole matrix); with a ReLU after every BatchNorm and after the add,
for ``linearize(onnx_model, x)`` vs ``linearize(module, x)`` (the time to linearise and build
the Jacobian's matrix). The ONNX side includes loading the model from bytes. Best of 3 after a
warm-up, ratios measured in the same run (run: ``python benchmarks/bench_onnx.py``).
"""

from __future__ import annotations

import io
import time
import warnings

import onnx
import torch
from torch import nn

import convmatrix as cm


class Net(nn.Module):
    def __init__(self, relu: bool, c: int = 64) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(4))
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x):
        x = self.act(self.bns[0](self.convs[0](x)))
        x = self.act(self.bns[1](self.convs[1](x)))
        y = self.act(self.bns[2](self.convs[2](x)))
        y = self.bns[3](self.convs[3](y))
        return self.act(y + x)


def best(function, repeats=3):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def export(module, shape):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(1, *shape), buffer, dynamo=False,
                          opset_version=17)
    return buffer.getvalue()


def main() -> None:
    shape = (64, 56, 56)
    torch.manual_seed(0)
    rows = []
    linear = Net(relu=False).eval()
    data = export(linear, shape)
    ours = best(lambda: cm.from_onnx(data).matrix(max_bytes=None))
    theirs = best(lambda: cm.from_torch(linear, shape).matrix(max_bytes=None))
    rows.append(("from_onnx vs from_torch, matrix", ours, theirs))
    relu = Net(relu=True).eval()
    data = export(relu, shape)
    x = torch.randn(1, *shape, dtype=torch.float64)
    proto = onnx.load_model_from_string(data)
    a = cm.linearize(proto, x).matrix(max_bytes=None)
    b = cm.linearize(relu, x).matrix(max_bytes=None)
    assert abs(a - b).max() < 1e-5  # BatchNorm folded into the convolutions in float32
    ours = best(lambda: cm.linearize(onnx.load_model_from_string(data), x).matrix(
        max_bytes=None))
    theirs = best(lambda: cm.linearize(relu, x).matrix(max_bytes=None))
    rows.append(("linearize(onnx) vs linearize(torch), matrix", ours, theirs))
    print("| what | onnx s | torch s | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
