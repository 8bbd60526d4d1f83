"""Stack files (TOML), stack and comparison reports, the CLI commands, and the inverse report:
built stacks against live torch, report numbers against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.cli import main
from convmatrix.reports.builtin import inverse_report
from convmatrix.reports.stack import compare_report, stack_report
from convmatrix.reports.stackfile import kernel_values, load_stack, parse_stack
from tests.helpers import rng

K3_STACK = """
title = "two k3/s2 transposed convolutions"
input = [1, 4, 4]
[[layers]]
kind = "ConvTranspose"
kernel = [1, 2, 3, 3]
stride = 2
padding = 1
output_padding = 1
[[layers]]
kind = "ConvTranspose"
kernel = [2, 1, 3, 3]
stride = 2
padding = 1
output_padding = 1
"""

K4_STACK = """
title = "k4/s2, random"
input = [1, 4, 4]
weights = "random"
seed = 3
[[layers]]
kind = "ConvTranspose"
kernel = [1, 1, 4, 4]
stride = 2
padding = 1
[[layers]]
kind = "Conv"
kernel = [1, 1, 3, 3]
padding = 1
weights = "ones"
"""


def test_a_stack_file_builds_the_stack_torch_computes():
    torch = pytest.importorskip("torch")
    loaded = parse_stack(K3_STACK)
    assert loaded.title == "two k3/s2 transposed convolutions"
    first = torch.nn.ConvTranspose2d(1, 2, 3, stride=2, padding=1, output_padding=1, bias=False)
    second = torch.nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1, output_padding=1,
                                      bias=False)
    for module in (first, second):
        torch.nn.init.ones_(module.weight)
    x = rng("stackfile").standard_normal((1, 4, 4))
    with torch.no_grad():
        expected = torch.nn.Sequential(first, second).double()(torch.from_numpy(x[None]))[0]
    np.testing.assert_allclose(loaded.stack(x), expected.numpy(), rtol=1e-12, atol=1e-12)
    # per-layer overrides: the second layer of K4_STACK is all ones, the first random
    k4 = parse_stack(K4_STACK).stack
    assert np.all(k4.layers[1].weight == 1)
    np.testing.assert_array_equal(k4.layers[0].weight, kernel_values((1, 1, 4, 4), "random", 3))


DENSE_STACK = """
input = [2, 4, 4]
weights = "random"
seed = 5
[[layers]]
kind = "Conv"
kernel = [3, 2, 3, 3]
[[layers]]
kind = "Slice"
axis = 0
start = 1
stop = 3
[[layers]]
kind = "Scale"
scale = [[[2.0]], [[-0.5]]]
shift = 1
[[layers]]
kind = "Flatten"
[[layers]]
kind = "Linear"
out_features = 6
bias = [1, 2, 3, 4, 5, 6]
[[layers]]
kind = "Reshape"
shape = [2, -1]
"""


def test_a_stack_file_with_dense_kinds_builds_what_torch_computes():
    torch = pytest.importorskip("torch")
    stack = parse_stack(DENSE_STACK).stack
    assert [type(f).__name__ for f in stack.layers] == [
        "Conv", "Slice", "Scale", "Flatten", "Linear", "Reshape"]
    conv = torch.from_numpy(kernel_values((3, 2, 3, 3), "random", 5))
    weight = torch.from_numpy(kernel_values((6, 8), "random", 5 + 4))
    x = rng("dense-stackfile").standard_normal((2, 4, 4))
    y = torch.nn.functional.conv2d(torch.from_numpy(x[None]), conv)[0, 1:3]
    y = y * torch.tensor([2.0, -0.5]).reshape(2, 1, 1) + 1
    y = (weight @ y.reshape(-1) + torch.arange(1.0, 7.0, dtype=torch.float64)).reshape(2, 3)
    np.testing.assert_allclose(stack(x), y.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("text", "message"), [
    ("input = [1, 4]\n[[layers]]\nkind='Linear'\n", r"layers\[0\] \(Linear\): `out_features` "
                                                    r"\(=None\) must be a positive int"),
    ("input = [1, 4]\n[[layers]]\nkind='Linear'\nout_features=2\nkernel=[2, 4]\n",
     r"`kernel` does not apply to Linear layers"),
    ("input = [1000, 1000]\n[[layers]]\nkind='Linear'\nout_features=100000\n",
     r"holds 100,000,000,000 values.*over `max_bytes`"),
    ("input = [1, 4]\n[[layers]]\nkind='Reshape'\nshape=[3, -1]\n",
     r"layers\[0\] \(Reshape\): `shape` \(=\(3, -1\)\) cannot hold"),
])
def test_bad_dense_kinds_in_stack_files_name_the_problem(text, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        parse_stack(text, max_bytes=2**30)


def test_icnr_copies_one_kernel_to_every_sub_pixel_channel():
    weight = kernel_values((8, 3, 3, 3), "icnr", seed=1, icnr=2)
    for block in range(2):
        copies = weight[4 * block:4 * block + 4]
        assert all(np.array_equal(copies[0], c) for c in copies[1:])
    assert not np.array_equal(weight[0], weight[4])


@pytest.mark.parametrize(("text", "message"), [
    ("input = [1, 4]\n", r"no \[\[layers\]\]"),
    ("input = 4\n[[layers]]\nkind='Conv'\n", r"`input` \(=4\) must be one sample's shape"),
    ("input = [1, 4]\nfoo = 1\n", r"unknown key\(s\) foo"),
    ("input = [1, 4]\n[[layers]]\nkind='Dense'\n", r"`layers\[0\].kind` \(='Dense'\) must be"),
    ("input = [1, 4]\n[[layers]]\nkind='Conv'\n", r"layers\[0\] \(Conv\): `kernel` \(=None\)"),
    ("input = [1, 4]\nweights='zeros'\n[[layers]]\nkind='Conv'\nkernel=[1,1,2]\n",
     r"`weights` \(='zeros'\) must be one of"),
    ("input = [1, 4]\n[[layers]]\nkind='Conv'\nkernel=[1,2,2]\n",
     r"layers\[0\] \(Conv\): .*in_channels|layers\[0\] \(Conv\): .*channel"),
    ("input = [1, 4]\n[[layers]]\nkind='Conv'\nkernel=[4,1,2]\nweights='icnr'\n",
     r"`icnr` \(=None\) must be the pixel-shuffle factor"),
    ("input = [1, 4\n", r"is not valid TOML"),
])
def test_bad_stack_files_name_the_problem(text, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        parse_stack(text)


def test_stack_report_states_counted_numbers(tmp_path):
    loaded = parse_stack(K3_STACK)
    text = stack_report(loaded.stack, figures=False).markdown
    # two channels in the middle: every path count doubles, so 2 × (1, 2, 3, 4, 6, 9)
    assert "values 2, 4, 6, 8, 12, 18 (a 9× imbalance)" in text
    rows, columns = loaded.stack.matrix_shape
    assert f"is {rows}×{columns} with {loaded.stack.matrix().nnz:,} stored entries" in text
    assert "full column rank" in text


def test_compare_report_needs_two_stacks_and_shows_both():
    k3, k4 = parse_stack(K3_STACK), parse_stack(K4_STACK)
    report = compare_report([(k3.title, k3.stack), (k4.title, k4.stack)], figures=False)
    assert "| | two k3/s2 transposed convolutions | k4/s2, random |" in report.markdown
    assert "own weights, constant input" in report.markdown
    with pytest.raises(cm.ConvMatrixError, match="a comparison needs at least two"):
        compare_report([(k3.title, k3.stack)])


def test_cli_report_stack_and_compare(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "k3.toml").write_text(K3_STACK)
    (tmp_path / "k4.toml").write_text(K4_STACK)
    assert main(["report", "--stack", str(tmp_path / "k3.toml"), "--out",
                 str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "report.md").exists()
    assert (tmp_path / "one" / "report-overlap.png").stat().st_size > 1000
    assert main(["compare", str(tmp_path / "k3.toml"), str(tmp_path / "k4.toml"), "--out",
                 str(tmp_path / "both.md")]) == 0
    text = (tmp_path / "both.md").read_text()
    assert "](both-overlap.png)" in text and (tmp_path / "both-overlap.png").exists()
    assert load_stack(tmp_path / "k4.toml").title == "k4/s2, random"
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "k3.toml"), "--out", str(tmp_path / "x")]) == 2
    assert "compare needs at least two stack files" in capsys.readouterr().err
    assert main(["report", "--stack", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the stack file" in capsys.readouterr().err


def test_help_documents_the_stack_format(capsys):
    for command in (["report", "--help"], ["compare", "--help"]):
        assert main(command) == 0  # main returns argparse's exit code (here --help's 0)
        out = capsys.readouterr().out
        assert "[[layers]]" in out and "kernel = [1, 1, 3, 3]" in out


def _dense(weight, input_shape):
    columns = []
    for flat in range(int(np.prod(input_shape))):
        unit = np.zeros(int(np.prod(input_shape)))
        unit[flat] = 1
        columns.append(reference.conv(unit.reshape(input_shape), weight).ravel())
    return np.stack(columns, axis=1)


def test_inverse_report_numbers_are_computed():
    report = inverse_report(figures=False)
    dense = _dense(np.ones((1, 1, 2, 2)), (1, 3, 3))
    rank = np.linalg.matrix_rank(dense)
    assert (f"| The seed's Conv2D(1, 2) on a 3×3 input | 4×9 | {rank} | {9 - rank} | no |"
            in report.markdown)
    from convmatrix.analysis.inverse import DEFAULT_SEED

    x = np.random.default_rng(DEFAULT_SEED).integers(-9, 10, 9)  # the documented default x
    pinv = np.linalg.pinv(dense) @ dense @ x
    assert f"[{round(pinv[0] * 9)}/9, {round(pinv[1] * 9)}/9," in report.markdown
    assert report.markdown.count("$$") % 2 == 0


def test_generator_report_reproduces_the_four_cases():
    from convmatrix.reports.builtin import checkerboard_generator_report

    text = checkerboard_generator_report(figures=False).markdown
    ones_row = next(line for line in text.splitlines() if line.startswith("| all-ones weights"))
    cells = [cell.strip() for cell in ones_row.split("|")[2:-1]]
    assert cells[0].startswith("**checkerboard**: values 1, 2, 3, 4, 6, 9; imbalance 9")
    assert all(cell.startswith("**even**") for cell in cells[1:])
    actual_row = next(line for line in text.splitlines()
                      if line.startswith("| own weights, constant input"))
    cells = [cell.strip() for cell in actual_row.split("|")[2:-1]]
    assert cells[3].startswith("**even**") and cells[4].startswith("**checkerboard**")
    assert "DISAGREES" not in text and "All checks passed." in text


def test_stack_files_offer_the_channels_first_kinds_only():
    text = 'input = [1, 4, 4]\n[[layers]]\nkind = "ChannelsLast"\n'
    with pytest.raises(cm.ConvMatrixError, match=r"must be one of AdaptiveAvgPool, AvgPool, "
                                                 r"BatchNorm, Conv, "
                                                 r"ConvTranspose, DepthToSpace, Flatten, "
                                                 r"GlobalAvgPool, Identity, Linear, NumpyPad, "
                                                 r"Pad, Permute, PixelShuffle, PixelUnshuffle, "
                                                 r"Reshape, Resize, Scale, Slice, SpaceToDepth, "
                                                 r"Upsample$"):
        parse_stack(text)
