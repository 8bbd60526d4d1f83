"""Issue 16, CLI items 6, 7/25, 17, 18, 22 and 24: one-line errors (exit 2), refusals before
allocating, no user file replaced, Ctrl-C → exit 130.

Oracles: the files' bytes before and after, numpy's dense SVD for the norm, the shape rules
worked out by hand for the Keras header.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


# --- item 17: a user's own files in an output directory are never replaced ---

def test_reports_refuses_to_replace_a_users_readme(tmp_path, capsys):
    (tmp_path / "README.md").write_text("my notes")
    code, _, err = run(capsys, "reports", "--out", tmp_path, "--no-figures")
    one_line_error(code, err, "README.md", "--force")
    assert (tmp_path / "README.md").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # nothing written


def test_reports_regenerates_its_own_files_and_force_replaces(tmp_path, capsys):
    (tmp_path / "README.md").write_text("my notes")
    assert run(capsys, "reports", "--out", tmp_path, "--no-figures", "--force")[0] == 0
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert run(capsys, "reports", "--out", tmp_path, "--no-figures")[0] == 0  # its own files
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert b"my notes" not in first["README.md"]


def test_report_into_a_directory_refuses_a_users_file_but_replaces_a_named_one(
        tmp_path, capsys):
    (tmp_path / "report.md").write_text("mine")
    code, _, err = run(capsys, "report", "--out", tmp_path, "--no-figures")
    one_line_error(code, err, "report.md")
    assert (tmp_path / "report.md").read_text() == "mine"
    notes = tmp_path / "notes.md"
    notes.write_text("old notes")
    assert run(capsys, "report", "--out", notes, "--no-figures")[0] == 0  # named: replaced
    assert "old notes" not in notes.read_text()


@pytest.mark.parametrize("kind", ["report", "compare"])
def test_stack_reports_refuse_a_users_file(tmp_path, capsys, kind):
    stack = tmp_path / "s.toml"
    stack.write_text('input = [1, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 3]\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{kind}.md").write_text("mine")
    argv = (["report", "--stack", stack] if kind == "report" else ["compare", stack, stack])
    code, _, err = run(capsys, *argv, "--out", out, "--no-figures")
    one_line_error(code, err, f"{kind}.md")
    assert (out / f"{kind}.md").read_text() == "mine"


# --- item 18: hostile stack files ---

@pytest.mark.parametrize(("content", "needle"), [
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b'input = [1, 6]\nweights = "random"\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 3]\n'
     b"seed = -1\n", "seed"),
    (b'title = "\xff\xfe"\ninput = [1, 4]\n', "UTF-8"),
    (b"x = 1\n" + b" " * (2 << 20), "larger than 1 MiB"),
])
def test_hostile_stack_files_give_one_line(tmp_path, capsys, content, needle):
    stack = tmp_path / "s.toml"
    stack.write_bytes(content)
    code, _, err = run(capsys, "report", "--stack", stack, "--out", tmp_path / "o",
                       "--no-figures")
    one_line_error(code, err, needle)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_stack_from_dev_zero_is_refused_by_size(tmp_path):
    # in a subprocess capped at 2 GiB of address space: a regression fails, never eats memory
    # (the child caps itself: a preexec_fn would fork this process, multithreaded once JAX ran)
    capped = ("import resource, runpy; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
              " runpy.run_module('convmatrix', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", capped, "report", "--stack", "/dev/zero",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    one_line_error(done.returncode, done.stderr, "larger than 1 MiB")


# --- item 6: --max-bytes on stacks, kernels checked before allocating ---

@pytest.mark.parametrize("kind", ["report", "compare"])
def test_stack_kernels_are_checked_against_the_given_budget(tmp_path, capsys, kind):
    stack = tmp_path / "s.toml"
    stack.write_text('input = [1, 8, 8]\n[[layers]]\nkind = "Conv"\n'
                     'kernel = [4096, 4096, 7, 7]\n')
    argv = (["report", "--stack", stack] if kind == "report" else ["compare", stack, stack])
    code, _, err = run(capsys, *argv, "--out", tmp_path / "o", "--max-bytes", "1G")
    one_line_error(code, err, "1 GiB", "6.12 GiB", "kernel")  # 4096·4096·49·8 bytes


def test_report_stack_matrix_line_names_the_given_budget(tmp_path, capsys):
    stack = tmp_path / "s.toml"
    # the report itself fits in 80 MB (estimated 37 MiB); the stack's matrix (102 MiB) not
    stack.write_text('input = [16, 32, 32]\n[[layers]]\nkind = "Conv"\nkernel = [16, 16, 3, 3]\n'
                     '[[layers]]\nkind = "Conv"\nkernel = [16, 16, 3, 3]\n')
    assert run(capsys, "report", "--stack", stack, "--out", tmp_path / "o", "--no-figures",
               "--max-bytes", "80M")[0] == 0
    text = (tmp_path / "o" / "report.md").read_text()
    assert "not formed here" in text and "4.00 GiB" not in text and "0.08 GiB" in text


# --- items 7 and 25: convmatrix norm ---

def test_norm_refuses_a_huge_input_at_once(capsys):
    code, _, err = run(capsys, "norm", "--input", "1x100000x100000", "--kernel", "1x1x3x3")
    one_line_error(code, err, "--max-bytes", "4 GiB", "TiB")


def test_norm_estimates_the_circular_fft_path(capsys):
    code, _, err = run(capsys, "norm", "--input", "1x3000x3000", "--kernel", "1x1x3x3",
                       "--padding", "1", "--padding-mode", "circular", "--max-bytes", "100M")
    one_line_error(code, err, "100 MiB", "MiB")


def test_norm_default_is_the_norm_and_bound_and_top_on_request(capsys):
    argv = ["norm", "--input", "2x7x6", "--kernel", "3x2x3x3", "--padding", "1"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "singular value" not in out and "certified upper bound" in out
    expected = np.linalg.svd(cm.Conv(np.ones((3, 2, 3, 3)), (2, 7, 6), padding=1)
                             .matrix().toarray(), compute_uv=False)
    norm = float(re.search(r"= ([\d.e+-]+)", out.splitlines()[1]).group(1))
    assert norm == pytest.approx(expected[0], rel=1e-9)
    code, out, _ = run(capsys, *argv, "--top", "2")
    values = [float(v) for v in out.splitlines()[2].split(":")[1].split(",")]
    np.testing.assert_allclose(values, expected[:2], rtol=1e-5)


# --- item 22: messages and flags ---

def test_verify_keras_header_is_in_keras_layout(capsys):
    code, out, _ = run(capsys, "verify", "--keras", "Conv2D", "--input", "5x5x1",
                       "--kernel", "2x2x1x1")
    assert code == 0
    assert out.splitlines()[0].startswith("Keras Conv2D 5×5×1 → 4×4×1 (channels_last")


def test_an_unknown_flag_names_the_subcommand(capsys):
    code, _, err = run(capsys, "verify", "--bogus")
    one_line_error(code, err, "convmatrix verify: error", "--bogus")


@pytest.mark.parametrize("flag", [["--weight", "random"], ["--seed", "3"]])
def test_shape_refuses_weight_flags_it_would_ignore(capsys, flag):
    code, _, err = run(capsys, "shape", "--input", "1x5x5", "--kernel", "1x1x3x3", *flag)
    one_line_error(code, err, flag[0])


@pytest.mark.parametrize(("command", "flags"), [
    ("shape", ["--stride", "--dilation", "--groups"]),
    ("reports", ["--out", "--force"]),
    ("norm", ["--max-bytes", "--top"]),
])
def test_every_flag_has_help(capsys, command, flags):
    with pytest.raises(SystemExit):
        from convmatrix.cli import build_parser

        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    for flag in flags:
        lines = [line for line in text.splitlines() if line.strip().startswith(flag)]
        assert lines, flag
        # the help text follows the flag on its line or on the next one
        index = text.splitlines().index(lines[0])
        following = text.splitlines()[index + 1].strip()
        assert len(lines[0].split()) > 2 or (following and not following.startswith("-"))


# --- item 24 (CLI): Ctrl-C ---

def test_ctrl_c_gives_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    import convmatrix.cli.verify as verify_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_module, "build_layer", interrupted)
    code, _, err = run(capsys, "verify", "--input", "1x5x5", "--kernel", "1x1x3x3")
    assert code == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
