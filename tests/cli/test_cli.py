"""The command line, in-process and as a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import convmatrix as cm
from convmatrix import reference
from convmatrix.cli import main
from convmatrix.reports import layer as report
from tests import helpers


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_matrix_prints_the_seed_matrix(capsys):
    code, out, _ = run(capsys, "matrix")
    assert code == 0
    rows = [line.strip(" []") for line in out.splitlines()[1:]]
    printed = np.array([[int(v) for v in row.split()] for row in rows])
    # each row of C sums the 2x2 window of a 3x3 input: compare with the reference on unit inputs
    expected = np.stack([reference.conv(np.eye(9, dtype=int)[j].reshape(1, 3, 3),
                                        np.ones((1, 1, 2, 2), dtype=int)).ravel()
                         for j in range(9)], axis=1)
    assert np.array_equal(printed, expected)


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_matrix_save(capsys, tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    code, out, _ = run(capsys, "matrix", "--input", "2x6x6", "--kernel", "3x2x3x3",
                       "--padding", "1", "--weight", "arange", "--save", str(path))
    assert code == 0 and "wrote C" in out
    loaded = sp.load_npz(path) if suffix == ".npz" else sp.csr_array(scipy.io.mmread(path))
    x = np.random.default_rng(0).standard_normal((2, 6, 6))
    weight = np.arange(1, 3 * 2 * 9 + 1).reshape(3, 2, 3, 3)
    np.testing.assert_allclose(loaded @ x.ravel(), reference.conv(x, weight, padding=1).ravel())


def test_verify_exit_codes(capsys):
    code, out, _ = run(capsys, "verify", "--input", "3x8x8", "--kernel", "4x3x3x3",
                       "--padding", "1:0,2:1", "--padding-mode", "circular", "--weight", "random")
    assert code == 0 and out.rstrip().endswith("all checks passed")
    code, out, _ = run(capsys, "verify", "--input", "2x3x4", "--kernel", "2x1x3x2",
                       "--transpose", "--output-padding", "1", "--dilation", "2", "--groups", "2")
    assert code == 0, out


def test_shape_prints_formula(capsys):
    code, out, _ = run(capsys, "shape", "--input", "1x5x5", "--kernel", "1x1x3x3", "--stride",
                       "2", "--transpose", "--output-padding", "1")
    assert code == 0
    expected = cm.conv_transpose_output_shape((1, 1, 3, 3), (1, 5, 5), stride=2,
                                              output_padding=1)
    assert f"output shape: {expected}" in out
    assert "(n' − 1)·s" in out


@pytest.mark.parametrize("argv", [
    ["verify", "--stride", "x"],
    ["verify", "--input", "1x4x4", "--kernel", "1x1x5x5"],
    ["verify", "--input", "1x4x4"],
    ["matrix", "--input", "64x56x56", "--kernel", "64x64x3x3"],
    ["matrix", "--save", "c.txt"],
    ["verify", "--padding-mode", "reflect", "--transpose"],
    ["nonsense"],
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err


def test_subprocess_help_and_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "convmatrix", "--help"], capture_output=True,
                          text=True, check=True)
    assert "examples:" in done.stdout and "convmatrix report" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "convmatrix", "shape", "--groups", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "`groups` (=0) must be positive" in bad.stderr


def test_shape_of_a_keras_layer_uses_keras_layout(capsys):
    code, out, _ = run(capsys, "shape", "--keras", "Conv2DTranspose", "--input", "3x3x1",
                       "--kernel", "2x2x1x1")
    assert code == 0
    # the seed's first snippet: (1, 3, 3, 1) -> (1, 4, 4, 1)
    assert "input shape:  (1, 3, 3, 1)" in out and "output shape: (1, 4, 4, 1)" in out


# ------------------------------------------------------------------------------------------
# issue 8, item 6 and the CLI side of item 3


def one_line_error(capsys, argv, *, match):
    """Run the CLI expecting exit code 2 and one stderr line matching ``match``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(match, err), err
    return err


def test_version(capsys):
    from importlib.metadata import version

    code = main(["--version"])
    assert code == 0 and capsys.readouterr().out.strip() == f"convmatrix {version('convmatrix')}"


HUGE = "99999999999999999999"


@pytest.mark.parametrize("argv", [
    ["shape", "--stride", HUGE],
    ["verify", "--stride", HUGE],
    ["shape", "--input", "1x3x3", "--kernel", f"1x1x{HUGE}x2"],
    ["matrix", "--input", "1x3x3", "--kernel", f"1x1x{HUGE}x2"],
    ["shape", "--padding", HUGE + "999"],
    ["report", "--padding", f"1:{HUGE}"],
    ["shape", "--dilation", f"1,{HUGE}"],
    ["shape", "--groups", HUGE],
    ["shape", "--input", f"1x{HUGE}x3", "--kernel", "1x1x2x2"],
    ["shape", "--transpose", "--output-padding", HUGE],
])
def test_huge_integers_are_one_line_errors(capsys, argv):
    one_line_error(capsys, argv, match=r"out of range: each value must lie below 2\*\*63")


@pytest.mark.parametrize(("argv", "flag"), [
    (["verify", "--stride", "2", "--stride", "3"], "--stride"),
    (["shape", "--input", "1x4x4", "--input", "1x5x5", "--kernel", "1x1x2x2"], "--input"),
    (["matrix", "--kernel", "1x1x2x2", "--kernel", "1x1x3x3"], "--kernel"),
    (["report", "--out", "a.md", "--out", "b.md"], "--out"),
    (["verify", "--max-bytes", "1G", "--max-bytes", "2G"], "--max-bytes"),
    (["shape", "--padding", "1", "--padding", "same"], "--padding"),
    (["shape", "--transpose", "--transpose"], "--transpose"),
    (["verify", "--weight", "ones", "--weight", "random"], "--weight"),
    (["compare", "a.toml", "b.toml", "--title", "a", "--title", "b"], "--title"),
    (["report", "--stack", "a.toml", "--stack", "b.toml"], "--stack"),
])
def test_a_repeated_flag_is_an_error(capsys, tmp_path, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)  # "last one wins" would write a report here
    one_line_error(capsys, argv, match=rf"argument {flag}: given twice")


def test_stack_reports_refuse_layer_flags(capsys, tmp_path):
    one_line_error(capsys, ["report", "--stack", str(tmp_path / "s.toml"), "--stride", "2"],
                   match=r"--stride cannot be used with --stack")


def test_channels_first_needs_keras(capsys):
    one_line_error(capsys, ["shape", "--channels-first"],
                   match=r"`--channels-first` applies only with --keras")
    code = main(["shape", "--keras", "Conv2D", "--channels-first", "--input", "1x3x3",
                 "--kernel", "2x2x1x1"])
    assert code == 0 and "output shape: (1, 1, 2, 2)" in capsys.readouterr().out


def test_geometry_is_checked_before_the_weight_is_made(capsys, monkeypatch):
    from convmatrix.cli import _layer

    def refuse(*args, **kwargs):
        raise AssertionError("the weight was allocated before the geometry was checked")

    monkeypatch.setattr(_layer, "make_weight", refuse)
    # a 9000x9000 kernel (650 MB of int64) on a 3x3 input: the kernel does not fit
    for command in ("matrix", "verify", "report"):
        one_line_error(capsys, [command, "--input", "1x3x3", "--kernel", "1x1x9000x9000"],
                       match=r"does not fit the padded input")


def test_matrix_checks_max_dense_from_the_shape(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the matrix was built before --max-dense was checked")

    monkeypatch.setattr(cm.Layer, "matrix", refuse)
    err = one_line_error(capsys, ["matrix", "--input", "64x56x56", "--kernel", "64x64x3x3"],
                         match=r"more than `--max-dense`")
    assert f"{64 * 56 * 56:,}" not in err and "186624×200704" in err  # 64·54·54 × 64·56·56


@pytest.mark.parametrize("argv", [
    # the transposed output is 2·10⁸ × 2·10⁸: explain's sample positions grew without end
    ["report", "--input", "1x3x3", "--kernel", "1x1x2x2", "--transpose", "--stride",
     "99999999"],
    ["report", "--transpose", "--stride", "99999999"],      # the same on the seed shapes
    ["report", "--padding", "40000"],                        # 80002² outputs: numpy's allocator
    ["verify", "--padding", "40000"],
    ["report", "--input", "1x3", "--kernel", "1x1x2", "--transpose", "--stride", "999999999"],
])
def test_report_and_verify_refuse_layers_over_the_memory_budget(capsys, tmp_path, argv):
    # refused up front, from the shapes: this returns at once instead of hanging
    err = one_line_error(capsys, [*argv, *(["--out", str(tmp_path)] if argv[0] == "report"
                                           else [])],
                         match=r"would need about .* over `--max-bytes` \(=4 GiB\)")
    assert not list(tmp_path.iterdir())
    assert "1×80002×80002" in err or "200000000" in err or "1999999999" in err


def test_max_bytes_is_the_budget_of_matrix_report_and_verify(capsys, tmp_path):
    small = ["--input", "1x16x16", "--kernel", "1x1x3x3"]
    # C has 14·14·9 = 1764 stored int64 entries: about 1764·(8 + 4) bytes plus pointers
    one_line_error(capsys, ["matrix", *small, "--save", str(tmp_path / "c.npz"),
                            "--max-bytes", "1K"], match=r"the matrix C .* over `--max-bytes`")
    assert not (tmp_path / "c.npz").exists()
    assert main(["matrix", *small, "--save", str(tmp_path / "c.npz"), "--max-bytes", "1M"]) == 0
    one_line_error(capsys, ["verify", *small, "--max-bytes", "8K"],
                   match=r"the verification .* over `--max-bytes` \(=8 KiB\)")
    one_line_error(capsys, ["report", *small, "--max-bytes", "8K", "--out", str(tmp_path)],
                   match=r"the report .* over `--max-bytes`")
    assert main(["report", *small, "--max-bytes", "none", "--out", str(tmp_path),
                 "--no-figures"]) == 0
    one_line_error(capsys, ["verify", "--max-bytes", "lots"], match=r"argument --max-bytes")


def test_weight_file_gives_real_weights(capsys, tmp_path):
    weight = helpers.rng("weight-file").standard_normal((3, 2, 3, 3)).astype(np.float32)
    np.save(tmp_path / "w.npy", weight)
    code = main(["matrix", "--input", "2x6x6", "--weight-file", str(tmp_path / "w.npy"),
                 "--padding", "1", "--save", str(tmp_path / "c.npz")])
    assert code == 0, capsys.readouterr().err
    loaded = sp.load_npz(tmp_path / "c.npz")
    assert loaded.dtype == np.float32
    x = helpers.rng("weight-file", "x").standard_normal((2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(loaded @ x.ravel(), reference.conv(x, weight, padding=1).ravel(),
                               rtol=1e-5, atol=1e-5)
    # --kernel may repeat the file's shape; verify runs on the file's values
    code = main(["verify", "--input", "2x6x6", "--kernel", "3x2x3x3", "--weight-file",
                 str(tmp_path / "w.npy"), "--padding", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "float32" in out and out.rstrip().endswith("all checks passed")


def test_weight_file_in_keras_layout(capsys, tmp_path):
    kernel = helpers.rng("keras-weight-file").standard_normal((2, 2, 1, 3))  # (*k, C_in, C_out)
    np.save(tmp_path / "k.npy", kernel)
    code = main(["matrix", "--keras", "Conv2D", "--input", "4x4x1", "--weight-file",
                 str(tmp_path / "k.npy"), "--save", str(tmp_path / "c.npz")])
    assert code == 0, capsys.readouterr().err
    x = helpers.rng("keras-weight-file", "x").standard_normal((4, 4, 1))
    torch_weight = np.transpose(kernel, (3, 2, 0, 1))  # (C_out, C_in, *k)
    expected = np.moveaxis(reference.conv(np.moveaxis(x, -1, 0), torch_weight), 0, -1)
    np.testing.assert_allclose(sp.load_npz(tmp_path / "c.npz") @ x.ravel(), expected.ravel())


@pytest.mark.parametrize(("content", "extra", "match"), [
    (np.ones((1, 1, 3, 3)), ["--kernel", "1x1x2x2"],
     r"`--weight-file` .* has shape 1×1×3×3, but `--kernel` says 1×1×2×2"),
    (np.ones((1, 1, 3, 3), dtype=np.float16), [], r"`--weight-file` .* float16"),
    (np.array([[[[None]]]], dtype=object), [], r"`--weight-file` .* numpy.save"),
    (np.ones((1, 1, 3, 3)), ["--weight", "random"],
     r"either `--weight` .* or `--weight-file`"),
    (np.ones((2, 1, 3, 3)), ["--groups", "2"], r"divisible by `groups`"),
    (b"not an array", [], r"`--weight-file` .* numpy.save"),
    (None, [], r"`--weight-file` .* No such file"),
])
def test_weight_file_errors_are_one_line(capsys, tmp_path, content, extra, match):
    path = tmp_path / "w.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content, allow_pickle=True)
    one_line_error(capsys, ["verify", "--input", "1x4x4", "--weight-file", str(path), *extra],
                   match=match)


def test_report_out_file_directory_and_missing_parent(capsys, tmp_path):
    layer = ["--input", "1x4x4", "--kernel", "1x1x3x3", "--stride", "2", "--transpose"]
    assert main(["report", *layer, "--out", str(tmp_path / "k3.md")]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "k3.md" in written and "report.md" not in written
    assert all(name.startswith("k3") for name in written)
    for png in re.findall(r"\]\(([^)]+\.png)\)", (tmp_path / "k3.md").read_text()):
        assert (tmp_path / png).exists()
    # an existing directory, and a new one whose parent exists: report.md inside
    assert main(["report", *layer, "--out", str(tmp_path), "--no-figures"]) == 0
    assert (tmp_path / "report.md").exists()
    assert main(["report", *layer, "--out", str(tmp_path / "new"), "--no-figures"]) == 0
    assert (tmp_path / "new" / "report.md").exists()
    capsys.readouterr()
    # a missing parent directory is an error, and nothing is created
    for out in (tmp_path / "missing" / "k3.md", tmp_path / "missing" / "deeper"):
        one_line_error(capsys, ["report", *layer, "--out", str(out)],
                       match=r"`--out` .* does not exist")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "notes.txt").write_text("mine")
    one_line_error(capsys, ["report", *layer, "--out", str(tmp_path / "notes.txt")],
                   match=r"`--out` .* is an existing file")


def test_report_headings_and_figure_titles_name_kernel_and_stride(tmp_path, monkeypatch):
    titles = []
    monkeypatch.setattr(report, "figures_available", lambda: True)
    monkeypatch.setattr(report, "sparsity_png", lambda m, title, **kw: titles.append(title) or b"")
    monkeypatch.setattr(report, "overlap_png", lambda c, title, **kw: titles.append(title) or b"")
    assert main(["report", "--input", "1x5x5", "--kernel", "1x1x3x3", "--stride", "2",
                 "--transpose", "--out", str(tmp_path / "r.md")]) == 0
    headings = re.findall(r"^#+ .*$", (tmp_path / "r.md").read_text(), re.M)
    assert headings[0] == "# ConvTranspose2d 1×5×5 → 1×11×11: kernel 3×3, stride 2"
    assert "## ConvTranspose2d: kernel 3×3, stride 2" in headings
    assert len(titles) == 2 and all("kernel 3×3, stride 2" in t for t in titles), titles
    # stride 1 is named too, and a Keras layer's section says so
    assert main(["report", "--keras", "Conv2D", "--input", "4x4x1", "--kernel", "3x3x1x1",
                 "--out", str(tmp_path / "k.md"), "--no-figures"]) == 0
    assert "## Keras Conv2D: kernel 3×3, stride 1" in (tmp_path / "k.md").read_text()
