"""``from_onnx`` and ``linearize`` of an ONNX export against the same on the torch module.

The network (issue 18): four 64-channel 3×3 convolutions with BatchNorm (eval) and a residual
add over the last two, at 56×56 — linear for ``from_onnx`` vs ``from_torch``; with a ReLU after
every BatchNorm and after the add for ``linearize(onnx_model, x)`` vs ``linearize(module, x)``.
At 64×56×56 the whole network's matrix has ~1.04e9 entries (~35 GiB, the graph's own plan
says so), so the full-size rows time reading the model (the ONNX side from its bytes, the torch
side tracing) plus building every node's own matrix (the factors the product is made of);
the product itself is timed at 16×28×28 (16 M entries). Best of 3 interleaved rounds (one of
each side in turn) after a warm-up, ratios measured in the same run (run:
``python benchmarks/bench_onnx.py``). ``from_onnx`` keeps the model's float32 as ``from_torch``
keeps the module's; a float64 row compares the export of ``module.double()`` with it.
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


def best(ours, theirs, repeats=3):
    """The best time of each of two functions over ``repeats`` interleaved rounds (warmed up)."""
    ours(), theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, record in zip((ours, theirs), times, strict=True):
            start = time.perf_counter()
            function()
            record.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def export(module, shape, dtype=torch.float32):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(1, *shape, dtype=dtype), buffer, dynamo=False,
                          opset_version=17)
    return buffer.getvalue()


def factors(layer):
    """Every node's own matrix (a graph's nodes, a chain's layers, or the layer itself)."""
    inner = getattr(layer, "layer", layer)  # a Linearization's tangent map
    ops = [n.op for n in inner.nodes] if hasattr(inner, "nodes") else list(inner.chain())
    return [op.matrix(max_bytes=None) for op in ops if isinstance(op, cm.Layer)]


def measure(size, what):
    """The two rows of one size: from_onnx vs from_torch, linearize(onnx) vs linearize(torch)."""
    torch.manual_seed(0)
    build = factors if what == "factors" else (lambda layer: layer.matrix(max_bytes=None))
    text = "×".join(map(str, size))
    linear = Net(relu=False, c=size[0]).eval()
    data = export(linear, size)
    rows = [(f"from_onnx vs from_torch, {what}, {text}",
             *best(lambda: build(cm.from_onnx(data)),
                   lambda: build(cm.from_torch(linear, size))))]
    if what == "factors":  # float64 on both sides: the export of module.double()
        double = Net(relu=False, c=size[0]).eval()
        double.load_state_dict(linear.state_dict())
        double = double.double()
        data_double = export(double, size, torch.float64)
        rows.append((f"from_onnx vs from_torch, float64 export vs module.double(), {what}, "
                     f"{text}", *best(lambda: build(cm.from_onnx(data_double)),
                                      lambda: build(cm.from_torch(double, size)))))
    relu = Net(relu=True, c=size[0]).eval()
    data_relu = export(relu, size)
    x = torch.randn(1, *size, dtype=torch.float64)
    if what == "matrix":
        a = cm.linearize(onnx.load_model_from_string(data_relu), x).matrix(max_bytes=None)
        b = cm.linearize(relu, x).matrix(max_bytes=None)
        assert abs(a - b).max() < 1e-5  # BatchNorm folded into the convs in float32
    rows.append((f"linearize(onnx) vs linearize(torch), {what}, {text}",
                 *best(lambda: build(cm.linearize(onnx.load_model_from_string(data_relu), x)),
                       lambda: build(cm.linearize(relu, x)))))
    return rows


def main() -> None:
    rows = measure((64, 56, 56), "factors") + measure((16, 28, 28), "matrix")
    print("| what | onnx s | torch s | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
