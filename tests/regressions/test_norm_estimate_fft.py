"""Issue 16 item 7 (the rest): ``convmatrix norm``'s memory estimate of the circular FFT path
covers what the path holds at once (the chunk of frequency matrices, the temporaries of its
per-axis transform and of the singular values) — before, one chunk was counted while about
three were held, so a 16-channel layer on 256² peaked at 192 MiB against an estimate of
104 MiB. Oracle: tracemalloc's peak (numpy reports its buffers) over the norm, the spectrum
and the certified bound, with chunks made small so that many are formed.
"""

from __future__ import annotations

import tracemalloc

import pytest

import convmatrix as cm
from convmatrix.analysis.spectra import fft
from convmatrix.cli import build_parser
from convmatrix.cli._layer import build_layer, plan_layer
from convmatrix.cli.norm import norm_nbytes

CASES = [("1x300x300", "1x1x3x3", "1"), ("8x40x40", "8x8x3x3", "1"),
         ("4x12x12x12", "4x2x3x3x3", "1"), ("6x30x30", "6x3x5x5", "2")]


@pytest.mark.parametrize(("shape", "kernel", "padding", "chunk"), [
    *((*case, chunk) for case in CASES for chunk in (1 << 16, 1 << 20)),
    ("32x96x96", "32x32x3x3", "1", None),  # the default chunk: peak 127 MiB, was est. 75 MiB
])
def test_fft_path_peak_is_within_the_estimate(monkeypatch, shape, kernel, padding, chunk):
    if chunk is not None:
        monkeypatch.setattr(fft, "_FREQUENCY_BYTES", chunk)
    argv = ["norm", "--input", shape, "--kernel", kernel, "--padding", padding,
            "--padding-mode", "circular", "--weight", "random"]
    groups = int(shape.split("x")[0]) // int(kernel.split("x")[1])
    if groups > 1:
        argv += ["--groups", str(groups)]
    args = build_parser().parse_args(argv)
    plan = plan_layer(args)
    estimate = norm_nbytes(plan)
    layer = cm.Conv(build_layer(args, plan).weight, plan.input_shape, padding=int(padding),
                    padding_mode="circular", groups=groups)
    cm.operator_norm(layer)  # imports and caches: not what the estimate is about
    for work in (cm.operator_norm, cm.singular_values, cm.operator_norm_bound):
        tracemalloc.start()
        try:
            work(layer)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= estimate, (work.__name__, peak, estimate)
