"""A corpus of hand-written convolutions, correct and deliberately wrong, for convmatrix.testing.

Each wrong implementation carries one bug a user could make; ``CORPUS`` pairs it with the layer
it was meant to compute and the diagnosis ``ConvMismatch.differences`` must give. The numpy
ones are written with ``np.pad`` and loops (sharing no code with convmatrix); the torch ones
call ``torch.nn.functional`` (imported lazily).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import convmatrix as cm
from tests.helpers import rng

NP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
            "circular": "wrap", "symmetric": "symmetric"}


def loop_conv(x: np.ndarray, w: np.ndarray, *, padding: Any = ((0, 0), (0, 0)),
              stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
              mode: str = "zeros", flip: bool = False,
              group_of_input: Callable[[int, int], int] | None = None, groups: int = 1
              ) -> np.ndarray:
    """A plain 2-D numpy loop (cross-correlation unless ``flip``), one sample (C, H, W)."""
    if flip:
        w = w[..., ::-1, ::-1]
    xp = np.pad(x, [(0, 0), *padding], mode=NP_MODES[mode])  # type: ignore[call-overload]
    c_out, c_in_g, kh, kw = w.shape
    c_out_g = c_out // groups
    oh = (xp.shape[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[2] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((c_out, oh, ow))
    for o, i, j in itertools.product(range(c_out), range(oh), range(ow)):
        g = o // c_out_g
        total = 0.0
        for c, a, b in itertools.product(range(c_in_g), range(kh), range(kw)):
            ci = group_of_input(g, c) if group_of_input else g * c_in_g + c
            total += w[o, c, a, b] * xp[ci, i * stride[0] + a * dilation[0],
                                        j * stride[1] + b * dilation[1]]
        out[o, i, j] = total
    return out


def _t(x: np.ndarray) -> Any:
    import torch

    torch.set_num_threads(1)  # tiny convolutions: threads cost 100x on a shared machine
    return torch.from_numpy(np.array(x, copy=True))


@dataclass(frozen=True)
class Bug:
    """A wrong implementation, the layer it should compute, and the expected diagnosis."""

    name: str
    layer: Callable[[], Any]
    fn: Callable[[Any], Callable[[np.ndarray], Any]]   # layer -> fn
    differences: dict[str, tuple[Any, Any]]
    uses_torch: bool = False
    batched: bool = False


def _w(*shape: int) -> np.ndarray:
    return rng("buggy", shape).standard_normal(shape)


W44 = _w(2, 2, 4, 4)
W33 = _w(3, 3, 3, 3)
W23 = _w(2, 3, 3, 3)
WG = _w(4, 2, 3, 3)
WT = _w(2, 3, 3, 3)
W1 = _w(2, 1, 3, 3)
BIAS = (0.25, -1.5, 2.0)


def _transpose_before(layer: Any) -> Callable[[np.ndarray], Any]:
    """conv_transpose2d whose output_padding rows go first: crop (p − a, p) of the full output."""
    import torch.nn.functional as F

    def fn(y: np.ndarray) -> Any:
        full = F.conv_transpose2d(_t(y)[None], _t(layer.weight), stride=2)[0]
        return full[:, 0:-1, 0:-1]   # p = 1, a = 1: crop 0 before, 1 after
    return fn


CORPUS: list[Bug] = [
    Bug("same padding, odd pixel before (numpy)",
        lambda: cm.Conv(W44, (2, 6, 6), padding="same"),
        lambda L: lambda x: loop_conv(x, L.weight, padding=((2, 1), (2, 1))),
        {"padding": (((1, 2), (1, 2)), ((2, 1), (2, 1)))}),
    Bug("TF 'same' for a strided layer (numpy)",
        lambda: cm.Conv(W23, (3, 8, 8), stride=2, padding=1),
        lambda L: lambda x: loop_conv(x, L.weight, padding=((0, 1), (0, 1)), stride=(2, 2)),
        {"padding": (((1, 1), (1, 1)), ((0, 1), (0, 1)))}),
    Bug("zero padding instead of reflect (torch)",
        lambda: cm.Conv(W23, (3, 5, 6), padding=1, padding_mode="reflect"),
        lambda L: lambda x: __import__("torch").nn.functional.conv2d(
            _t(x), _t(L.weight), padding=1),
        {"padding_mode": ("reflect", "zeros")}, uses_torch=True, batched=True),
    Bug("numpy 'reflect' where TF SYMMETRIC was meant (numpy)",
        lambda: cm.Conv(W23, (3, 5, 5), padding=2, padding_mode="symmetric"),
        lambda L: lambda x: loop_conv(x, L.weight, padding=((2, 2), (2, 2)), mode="reflect"),
        {"padding_mode": ("symmetric", "reflect")}),
    Bug("circular padding instead of replicate (torch)",
        lambda: cm.Conv(W23, (3, 5, 5), padding=1, padding_mode="replicate"),
        lambda L: lambda x: __import__("torch").nn.functional.conv2d(
            __import__("torch").nn.functional.pad(_t(x)[None], (1, 1, 1, 1), mode="circular"),
            _t(L.weight))[0],
        {"padding_mode": ("replicate", "circular")}, uses_torch=True),
    Bug("true convolution, flipped kernel (numpy, like scipy.signal.convolve2d)",
        lambda: cm.Conv(W23, (3, 5, 5), padding=1),
        lambda L: lambda x: loop_conv(x, L.weight, padding=((1, 1), (1, 1)), flip=True),
        {"kernel_flip": (False, True)}),
    Bug("weight channel axes swapped (torch)",
        lambda: cm.Conv(W33, (3, 5, 5), padding=1),
        lambda L: lambda x: __import__("torch").nn.functional.conv2d(
            _t(x), _t(L.weight.transpose(1, 0, 2, 3)), padding=1),
        {"weight_channels_swapped": (False, True)}, uses_torch=True, batched=True),
    Bug("kernel spatial axes swapped (torch)",
        lambda: cm.Conv(W23, (3, 5, 6), padding=1),
        lambda L: lambda x: __import__("torch").nn.functional.conv2d(
            _t(x), _t(L.weight.transpose(0, 1, 3, 2)), padding=1),
        {"kernel_axes_swapped": (None, (0, 1))}, uses_torch=True, batched=True),
    Bug("stride 2 instead of 1 (numpy)",
        lambda: cm.Conv(W23, (3, 7, 7), padding=1),
        lambda L: lambda x: loop_conv(x, L.weight, padding=((1, 1), (1, 1)), stride=(2, 2)),
        {"shape": ((2, 7, 7), (2, 4, 4)), "stride": ((1, 1), (2, 2))}),
    Bug("dilation forgotten (torch)",
        lambda: cm.Conv(W23, (3, 7, 7), padding=2, dilation=2),
        lambda L: lambda x: __import__("torch").nn.functional.conv2d(
            _t(x)[None], _t(L.weight), padding=2)[0],
        {"shape": ((2, 7, 7), (2, 9, 9)), "dilation": ((2, 2), (1, 1))}, uses_torch=True),
    Bug("groups: input channels interleaved (numpy)",
        lambda: cm.Conv(WG, (4, 4, 4), padding=1, groups=2),
        lambda L: lambda x: loop_conv(x, L.weight, padding=((1, 1), (1, 1)), groups=2,
                                      group_of_input=lambda g, c: c * 2 + g),
        {"groups": (2, "2, input channels interleaved (group of channel c: c % 2)")}),
    Bug("output_padding on the wrong side (torch)",
        lambda: cm.ConvTranspose(WT, (2, 3, 4), stride=2, padding=1, output_padding=1),
        _transpose_before,
        {"output_padding": (((0, 1), (0, 1)), ((1, 0), (1, 0)))}, uses_torch=True),
    Bug("transposed conv without its padding (torch)",
        lambda: cm.ConvTranspose(WT, (2, 3, 4), stride=2, padding=1),
        lambda L: lambda x: __import__("torch").nn.functional.conv_transpose2d(
            _t(x), _t(L.weight), stride=2),
        {"shape": ((3, 5, 7), (3, 7, 9)), "padding": (((1, 1), (1, 1)), ((0, 0), (0, 0)))},
        uses_torch=True, batched=True),
    Bug("an added bias (torch)",
        lambda: cm.Conv(W33, (3, 4, 4), padding=1),
        lambda L: lambda x: __import__("torch").nn.functional.conv2d(
            _t(x), _t(L.weight), _t(np.array(BIAS)), padding=1),
        {"offset": (None, BIAS)}, uses_torch=True, batched=True),
    Bug("a ReLU after the conv (torch)",
        lambda: cm.Conv(W23, (3, 4, 4), padding=1),
        lambda L: lambda x: __import__("torch").relu(__import__("torch").nn.functional.conv2d(
            _t(x), _t(L.weight), padding=1)),
        {"nonlinear": ("linear", "relu(layer(x))")}, uses_torch=True, batched=True),
    Bug("depthwise multiplier order (numpy): output channel o reads input o % C",
        lambda: cm.Conv(_w(4, 1, 3, 3), (2, 4, 4), padding=1, groups=2),
        lambda L: lambda x: np.stack([loop_conv(x[o % 2:o % 2 + 1], L.weight[o:o + 1],
                                                padding=((1, 1), (1, 1)))[0]
                                      for o in range(4)]),
        {"groups": (2, "2, output channels interleaved (group of channel c: c % 2)")}),
]

CORRECT: list[tuple[str, Callable[[], Any], Callable[[Any], Callable[[np.ndarray], Any]], bool,
                     bool]] = [
    ("numpy loop, reflect, stride 2", lambda: cm.Conv(W23, (3, 6, 5), stride=2, padding=1,
                                                      padding_mode="reflect"),
     lambda L: lambda x: loop_conv(x, L.weight, padding=((1, 1), (1, 1)), stride=(2, 2),
                                   mode="reflect"), False, False),
    ("numpy loop, symmetric, dilation 2", lambda: cm.Conv(W23, (3, 6, 6), padding=2, dilation=2,
                                                          padding_mode="symmetric"),
     lambda L: lambda x: loop_conv(x, L.weight, padding=((2, 2), (2, 2)), dilation=(2, 2),
                                   mode="symmetric"), False, False),
    ("F.conv2d groups", lambda: cm.Conv(WG, (4, 5, 5), padding=1, groups=2),
     lambda L: lambda x: __import__("torch").nn.functional.conv2d(
         _t(x), _t(L.weight), padding=1, groups=2), True, True),
    ("F.conv1d", lambda: cm.Conv(_w(3, 2, 4), (2, 9), stride=2, padding=((2, 1),)),
     lambda L: lambda x: __import__("torch").nn.functional.conv1d(
         __import__("torch").nn.functional.pad(_t(x), (2, 1)), _t(L.weight), stride=2),
     True, True),
    ("F.conv3d", lambda: cm.Conv(_w(2, 1, 2, 3, 2), (1, 4, 5, 3), padding=1, dilation=(1, 2, 1)),
     lambda L: lambda x: __import__("torch").nn.functional.conv3d(
         _t(x)[None], _t(L.weight), padding=1, dilation=(1, 2, 1))[0], True, False),
    ("F.conv_transpose2d", lambda: cm.ConvTranspose(WT, (2, 3, 4), stride=2, padding=1,
                                                    output_padding=1),
     lambda L: lambda x: __import__("torch").nn.functional.conv_transpose2d(
         _t(x), _t(L.weight), stride=2, padding=1, output_padding=1), True, True),
    ("F.conv_transpose1d groups", lambda: cm.ConvTranspose(_w(4, 1, 3), (4, 5), stride=3,
                                                           groups=2),
     lambda L: lambda x: __import__("torch").nn.functional.conv_transpose1d(
         _t(x)[None], _t(L.weight), stride=3, groups=2)[0], True, False),
    ("F.conv2d with bias", lambda: cm.Conv(W23, (3, 4, 4), padding=1, bias=BIAS[:2]),
     lambda L: lambda x: __import__("torch").nn.functional.conv2d(
         _t(x), _t(L.weight), _t(np.array(BIAS[:2])), padding=1), True, True),
]
