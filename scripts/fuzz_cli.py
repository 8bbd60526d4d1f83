#!/usr/bin/env python
"""Randomised hostile invocations of the ``convmatrix`` CLI (issue 16, "Done when").

Draws ``--count`` invocations with a seeded RNG over every subcommand (report, reports,
verify, shape, matrix, norm, compare): valid small requests and hostile ones (huge shapes,
huge strides/padding/dilation, zero/negative/float/garbage numbers, unknown and repeated
flags, bad padding modes, bad --max-bytes, missing/unwritable output paths, hostile stack
TOML files, weight files with wrong shapes/dtypes). Each runs as ``python -m convmatrix ...``
in a temporary cwd, serially, under an address-space cap (RLIMIT_AS, default 6 GiB) and a
per-call timeout, and is classified:

  ok        exit 0 (no traceback)
  error     exit 2 with exactly one stderr line starting with "convmatrix"/"error" or
            containing "error:", no traceback
  WARN-oom-caught  a one-line exit-2 error reporting a failed allocation (MemoryError)
            instead of a refusal before allocating: passes the CLI contract, but is a
            memory-guard escape worth a look
  FAIL-*    anything else: traceback, timeout, killed by a signal / MemoryError (memory
            cap), exit other than 0/2/130, a multi-line or malformed error, or an exit 2
            for a request the fuzzer built as valid (FAIL-valid-refused).

Standalone script (not a test):  python scripts/fuzz_cli.py --seed 0 --count 300
Exit status: 0 when no failure, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time

SUBCOMMANDS = ["report", "reports", "verify", "shape", "matrix", "norm", "compare"]
LAYER_CMDS = ["report", "verify", "shape", "matrix", "norm"]

BAD_INTS = [
    "0",
    "-1",
    "-7",
    "1.5",
    "abc",
    "",
    "1e9",
    "100000",
    "99999999999999999999",
    "nan",
    "inf",
    "(1,2)",
    "1,2,3,4,5",
    "1:2",
    "-1:-1",
    " 1",
    "0x10",
    "1_000",
    "2,0",
    "1,-1",
    "--",
    "\u0661",
]
BAD_PADS = [*BAD_INTS, "same", "valid", "SAME", "full", "1:2,0:1", "100000", "1:100000", "-5", "1:2:3"]
HUGE = ["100000", "1000000000", "99999", "100000,100000", "4096"]
BAD_SHAPES = [
    "1x100000x100000",
    "0x3x3",
    "1x-3x3",
    "1x3",
    "1",
    "1x3x3x3x3x3",
    "axbxc",
    "1x3.5x3",
    "",
    "x",
    "1xx3",
    "100000x1x1",
    "1x1x1000000000",
    "64x3000x3000",
    "1x100000",
    "3X3X3",
    "1x3x3 ",
    "-1",
    "1x99999999999999999999x1",
]
BAD_KERNELS = [
    "1x1x100000x100000",
    "0x1x2x2",
    "4096x4096x7x7",
    "1x1x2",
    "2x1x2x2",
    "1x1x-2x2",
    "garbage",
    "1x1x0x0",
    "1x1x2x2x2x2",
    "1x2x3x3",
    "",
    "64x64x99x99",
]
BAD_MODES = ["bogus", "", "ZEROS", "reflect ", "wrap"]
MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
BAD_MAXBYTES = [
    "0",
    "-1",
    "abc",
    "1e400",
    "1.5G",
    "99999999999999999999999999TiB",
    "1K",
    "none",
    "512M",
    "16GiB",
    "",
    "1B",
    "NaN",
    "inf",
    "1 GiB",
    "1XB",
]
KERAS = [
    "Conv2D",
    "Conv1D",
    "Conv2DTranspose",
    "DepthwiseConv2D",
    "Conv3D",
    "Dense",
    "Conv9D",
    "__import__",
    "",
    "SeparableConv2D",
]
UNKNOWN_FLAGS = [
    "--bogus",
    "--inputs",
    "-x",
    "--stride=",
    "--out",
    "--save",
    "--top",
    "--force=1",
    "---input",
    "--help-me",
    "--weight-file",
    "--kernel",
]
TOP = ["0", "-1", "1", "3", "1000000", "abc", "1.5"]
TOL = ["0", "-1", "nan", "1e-300", "abc", "1", "inf"]


def make_fixtures(root: str) -> dict:
    """Weight files, stack files and awkward paths in ``root``; returns name -> path."""
    import numpy as np

    fx: dict[str, str] = {}

    def npy(name, arr, **kw):
        p = os.path.join(root, name)
        np.save(p, arr, **kw)
        fx[name] = p

    npy("w_ok.npy", np.ones((1, 1, 3, 3), np.float32))
    npy("w_ok2.npy", np.arange(8, dtype=np.float64).reshape(2, 1, 2, 2))
    npy("w_wrongshape.npy", np.ones((5, 7), np.float32))
    npy("w_scalar.npy", np.float32(3.0))
    npy("w_int8.npy", np.full((1, 1, 3, 3), 100, np.int8))
    npy("w_bool.npy", np.ones((1, 1, 2, 2), bool))
    npy("w_bigendian.npy", np.ones((1, 1, 3, 3), ">f4"))
    npy("w_complex.npy", np.ones((1, 1, 3, 3), np.complex128))
    npy("w_nan.npy", np.full((1, 1, 3, 3), np.nan, np.float32))
    npy("w_inf.npy", np.full((1, 1, 3, 3), np.inf))
    npy("w_1e308.npy", np.full((1, 1, 3, 3), 1e308))
    npy("w_1e200.npy", np.full((1, 1, 3, 3), 1e200))
    npy("w_1e-200.npy", np.full((1, 1, 3, 3), 1e-200))
    npy("w_zeros.npy", np.zeros((1, 1, 3, 3)))
    npy("w_empty.npy", np.ones((0, 1, 3, 3), np.float32))
    npy("w_str.npy", np.array([["a", "b"], ["c", "d"]]))
    npy("w_object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    npy("w_structured.npy", np.zeros((1, 1, 3, 3), dtype=[("a", "f4"), ("b", "i4")]))
    npy("w_float16.npy", np.ones((1, 1, 3, 3), np.float16))
    npy("w_uint64.npy", np.full((1, 1, 3, 3), 2**63, np.uint64))
    npy("w_5d.npy", np.ones((1, 1, 2, 2, 2, 2, 2), np.float32))
    npy("w_fortran.npy", np.asfortranarray(np.ones((2, 1, 3, 2), np.float32)))
    for name, data in [
        ("w_garbage.npy", b"not a numpy file at all\n"),
        ("w_truncated.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order'"),
        ("w_empty_file.npy", b""),
    ]:
        p = os.path.join(root, name)
        with open(p, "wb") as f:
            f.write(data)
        fx[name] = p
    # header claims a huge shape
    p = os.path.join(root, "w_hugeheader.npy")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 3, 3), }"
    hdr = hdr + " " * (118 - len(hdr)) + "\n"
    with open(p, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode() + b"\0" * 64)
    fx["w_hugeheader.npy"] = p
    fx["w_dir"] = root  # a directory, not a file
    fx["w_missing.npy"] = os.path.join(root, "nope", "missing.npy")
    fx["w_devnull"] = "/dev/null"
    fx["w_devzero"] = "/dev/zero"

    stacks = {
        "s_ok.toml": 'input = [1, 6, 6]\nweights = "ones"\nseed = 0\n[[layers]]\nkind = "Conv"\n'
        "kernel = [1, 1, 3, 3]\nstride = 1\npadding = 1\n",
        "s_ok2.toml": 'input = [1, 4, 4]\nweights = "ones"\nseed = 0\n[[layers]]\nkind = "ConvTranspose"\n'
        "kernel = [1, 1, 3, 3]\nstride = 2\npadding = 1\noutput_padding = 1\n"
        '[[layers]]\nkind = "Upsample"\nscale_factor = 2\nmode = "nearest"\n',
        "s_ok3.toml": 'input = [1, 4, 4]\nweights = "random"\nseed = 3\n[[layers]]\nkind = "ConvTranspose"\n'
        "kernel = [1, 1, 4, 4]\nstride = 2\npadding = 1\n",
        "s_deep.toml": "x = " + "[" * 5000 + "]" * 5000 + "\n" + "input = [1, 4, 4]\n",
        "s_deep_layers.toml": 'input = [1, 4, 4]\n[[layers]]\nkind = "Conv"\nkernel = '
        + "[" * 3000
        + "1"
        + "]" * 3000
        + "\n",
        "s_hugekernel.toml": 'input = [4096, 8, 8]\nweights = "ones"\n[[layers]]\nkind = "Conv"\n'
        "kernel = [4096, 4096, 7, 7]\n",
        "s_hugeinput.toml": 'input = [1, 100000, 100000]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 3, 3]\n',
        "s_negseed.toml": 'input = [1, 4, 4]\nweights = "random"\nseed = -1\n[[layers]]\nkind = "Conv"\n'
        "kernel = [1, 1, 2, 2]\n",
        "s_bigseed.toml": 'input = [1, 4, 4]\nweights = "random"\nseed = 99999999999999999999999\n'
        '[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\n',
        "s_badkind.toml": 'input = [1, 4, 4]\n[[layers]]\nkind = "os.system"\nkernel = [1, 1, 2, 2]\n',
        "s_nolayers.toml": "input = [1, 4, 4]\n",
        "s_emptylayers.toml": "input = [1, 4, 4]\nlayers = []\n",
        "s_badkey.toml": 'input = [1, 4, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\nbogus = 3\n',
        "s_badtypes.toml": 'input = "1x4x4"\n[[layers]]\nkind = 3\nkernel = "big"\nstride = 1.5\n',
        "s_floatinput.toml": 'input = [1.5, 4, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\n',
        "s_neginput.toml": 'input = [1, -4, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\n',
        "s_badweights.toml": 'input = [1, 4, 4]\nweights = "evil"\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\n',
        "s_upsample_huge.toml": 'input = [1, 4]\n[[layers]]\nkind = "Upsample"\nscale_factor = 1e9\n',
        "s_hugestride.toml": 'input = [1, 4, 4]\n[[layers]]\nkind = "ConvTranspose"\nkernel = [1, 1, 3, 3]\n'
        "stride = 100000\n",
        "s_mismatch.toml": 'input = [3, 4, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\n',
        "s_syntax.toml": "input = [1, 4, 4\n[[layers]\nkind = \n",
        "s_empty.toml": "",
        "s_layers_not_table.toml": "input = [1, 4, 4]\nlayers = 5\n",
        "s_manylayers.toml": "input = [1, 8, 8]\n"
        + '[[layers]]\nkind = "Conv"\nkernel = [1, 1, 1, 1]\n' * 2000,
        "s_nan.toml": 'input = [1, 4, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\nstride = nan\n',
    }
    for name, text in stacks.items():
        p = os.path.join(root, name)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        fx[name] = p
    for name, data in [
        ("s_badutf8.toml", b'input = [1, 4, 4]\ntitle = "\xff\xfe\xc3"\n'),
        ("s_nul.toml", b"input = [1, 4, 4]\0\0\0\n"),
        (
            "s_bom.toml",
            b'\xef\xbb\xbfinput = [1, 4, 4]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 2, 2]\n',
        ),
    ]:
        p = os.path.join(root, name)
        with open(p, "wb") as f:
            f.write(data)
        fx[name] = p
    fx["s_devzero"] = "/dev/zero"
    fx["s_devnull"] = "/dev/null"
    fx["s_missing.toml"] = os.path.join(root, "missing", "nothing.toml")
    fx["s_dir"] = root
    # a file used as a parent directory, a read-only directory, a missing parent
    p = os.path.join(root, "plainfile")
    with open(p, "w") as f:
        f.write("x\n")
    fx["plainfile"] = p
    ro = os.path.join(root, "readonly")
    os.mkdir(ro)
    os.chmod(ro, 0o500)
    fx["readonly"] = ro
    return fx


class Gen:
    """Builds one argument list per draw; ``valid`` marks requests built to succeed."""

    def __init__(self, rng: random.Random, fx: dict, root: str):
        self.r, self.fx, self.root, self.n = rng, fx, root, 0

    def fresh(self, stem: str) -> str:
        self.n += 1
        return os.path.join(self.root, "out", f"{stem}{self.n}")

    def valid_layer(self, cmd: str) -> list[str]:
        r = self.r
        c = r.choice([1, 2])
        h = r.choice([3, 4, 5])
        k = r.choice([1, 2, 3])
        o = r.choice([1, 2])
        args = ["--input", f"{c}x{h}x{h}", "--kernel", f"{o}x{c}x{k}x{k}"]
        if r.random() < 0.3:
            args += ["--stride", str(r.choice([1, 2]))]
        if r.random() < 0.3:
            args += ["--padding", str(r.choice([0, 1])) if k > 1 else "0"]
            if r.random() < 0.5 and k > 1:
                args += ["--padding-mode", r.choice(MODES)]
        if r.random() < 0.3 and cmd != "shape":  # shape refuses --weight/--seed (issue 16 item 22)
            args += [
                "--weight",
                r.choice(["ones", "arange", "random"]),
                "--seed",
                str(r.randint(0, 99)),
            ]
        return args

    def valid(self, cmd: str) -> list[str]:
        r = self.r
        if cmd == "reports":
            return ["reports", "--out", self.fresh("reports"), "--no-figures"]
        if cmd == "compare":
            a, b = r.sample(["s_ok.toml", "s_ok2.toml", "s_ok3.toml"], 2)
            return [
                "compare",
                self.fx[a],
                self.fx[b],
                "--out",
                self.fresh("cmp") + ".md",
                "--no-figures",
            ]
        if cmd == "report" and r.random() < 0.3:
            return [
                "report",
                "--stack",
                self.fx[r.choice(["s_ok.toml", "s_ok2.toml"])],
                "--out",
                self.fresh("rep") + ".md",
                "--no-figures",
            ]
        args = [cmd, *self.valid_layer(cmd)]
        if cmd == "report":
            args += ["--out", self.fresh("rep") + ".md", "--no-figures"]
        if cmd == "matrix" and r.random() < 0.4:
            args += ["--save", self.fresh("m") + r.choice([".npz", ".mtx"])]
        return args

    def bad_path(self, ext: str) -> str:
        r, fx = self.r, self.fx
        return r.choice(
            [
                os.path.join(fx["plainfile"], "sub" + ext),
                os.path.join(fx["readonly"], "x" + ext),
                os.path.join(self.root, "no", "such", "dir", "x" + ext),
                "/proc/x" + ext,
                "/dev/null",
                "",
                fx["plainfile"],
                self.root,
                "x" * 300 + ext,
                "/dev/full" if ext in (".npz", ".mtx", ".md") else "/dev/full",
                self.fresh("m") + r.choice([".txt", ".npy", "", ".NPZ", ".mtx.gz"]),
            ]
        )

    def mutate(self, cmd: str, args: list[str]) -> list[str]:
        """One hostile change to a (valid) argument list."""
        r, fx = self.r, self.fx
        kinds = ["unknown_flag", "repeat_flag"]
        if cmd in LAYER_CMDS:
            kinds += [
                "input",
                "input",
                "kernel",
                "kernel",
                "stride",
                "padding",
                "dilation",
                "groups",
                "mode",
                "output_padding",
                "keras",
                "weight_file",
                "weight_file",
                "seed",
                "huge",
                "transpose",
                "weight",
            ]
        if cmd in ("report", "verify", "matrix", "norm", "compare"):
            kinds += ["max_bytes", "max_bytes"]
        if cmd in ("report", "reports", "compare"):
            kinds += ["out", "out"]
        if cmd == "matrix":
            kinds += ["save", "save", "max_dense"]
        if cmd == "norm":
            kinds += ["top", "tol"]
        if cmd in ("report", "compare"):
            kinds += ["stack", "stack", "stack"]
        kind = r.choice(kinds)
        a = list(args)

        def setflag(flag, val):
            if flag in a:
                i = a.index(flag)
                if i + 1 < len(a) and flag not in ("--transpose",):
                    a[i + 1] = val
                    return
            a.extend([flag, val])

        if kind == "unknown_flag":
            a.insert(r.randint(1, len(a)), r.choice(UNKNOWN_FLAGS))
        elif kind == "repeat_flag":
            flags = [x for x in a[1:] if x.startswith("--")]
            if flags:
                f = r.choice(flags)
                i = a.index(f)
                a.extend(a[i : i + 2] if i + 1 < len(a) and not a[i + 1].startswith("--") else [f])
            else:
                a.extend(["--no-figures", "--no-figures"])
        elif kind == "input":
            setflag("--input", r.choice(BAD_SHAPES))
        elif kind == "kernel":
            setflag("--kernel", r.choice(BAD_KERNELS))
        elif kind in ("stride", "dilation", "groups", "output_padding", "seed"):
            flag = "--" + kind.replace("_", "-")
            setflag(flag, r.choice(BAD_INTS + HUGE))
        elif kind == "padding":
            setflag("--padding", r.choice(BAD_PADS))
        elif kind == "mode":
            setflag("--padding-mode", r.choice(BAD_MODES + MODES))
        elif kind == "keras":
            setflag("--keras", r.choice(KERAS))
            if r.random() < 0.5:
                a.append("--channels-first")
        elif kind == "weight_file":
            wf = r.choice([k for k in fx if k.startswith("w_")])
            setflag("--weight-file", fx[wf])
            if r.random() < 0.5 and "--kernel" in a:
                i = a.index("--kernel")
                del a[i : i + 2]
        elif kind == "weight":
            setflag("--weight", r.choice(["evil", "", "ONES", "random", "uniform"]))
        elif kind == "transpose":
            a.append("--transpose")
            if r.random() < 0.5:
                setflag("--output-padding", r.choice(["1", "5", "-1", "1,1"]))
        elif kind == "huge":
            setflag(r.choice(["--stride", "--padding", "--dilation"]), r.choice(HUGE))
            if r.random() < 0.5:
                setflag("--input", "1x100000x100000")
        elif kind == "max_bytes":
            setflag("--max-bytes", r.choice(BAD_MAXBYTES))
        elif kind == "out":
            setflag("--out", self.bad_path(".md"))
        elif kind == "save":
            setflag("--save", self.bad_path(r.choice([".npz", ".mtx"])))
        elif kind == "max_dense":
            setflag("--max-dense", r.choice([*BAD_INTS, "100000000000"]))
        elif kind == "top":
            setflag("--top", r.choice(TOP))
        elif kind == "tol":
            setflag("--tol", r.choice(TOL))
        elif kind == "stack":
            s = fx[r.choice([k for k in fx if k.startswith("s_")])]
            if cmd == "report":
                setflag("--stack", s)
            else:  # compare: replace one of the positional stack files
                pos = [i for i, x in enumerate(a) if x.endswith(".toml")]
                a[r.choice(pos) if pos else 1] = s
        return a

    def draw(self) -> tuple[str, list[str], bool]:
        r = self.r
        cmd = r.choice(SUBCOMMANDS)
        if cmd == "reports" and r.random() < 0.5:
            cmd = r.choice(SUBCOMMANDS)  # reports is slow and has few knobs: draw it less
        args = self.valid(cmd)
        if r.random() < 0.25:
            return cmd, args, True
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            args = self.mutate(cmd, args)
        return cmd, args, False


def limit_memory(nbytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))

    return preexec


def classify(rc, out: str, err: str, timed_out: bool, valid: bool) -> str:
    text = out + err
    if timed_out:
        return "FAIL-timeout"
    if rc is not None and rc < 0:
        return f"FAIL-signal-{signal.Signals(-rc).name}"
    if "Traceback (most recent call last)" in text:
        return "FAIL-traceback"
    oom = "MemoryError" in text or "Unable to allocate" in text or "Cannot allocate memory" in text
    if oom and rc != 2:
        return "FAIL-memory"
    if rc == 0:
        return "ok"
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if len(lines) != 1:
            return "FAIL-multiline-error" if lines else "FAIL-empty-error"
        ln = lines[0]
        if not (ln.startswith("convmatrix") or ln.startswith("error") or "error:" in ln):
            return "FAIL-malformed-error"
        if ln.rstrip().endswith("error:") or ln.rstrip().endswith("error"):
            return "FAIL-empty-error"
        if valid:
            return "FAIL-valid-refused"
        # a one-line exit 2, but from an allocation that failed rather than a refusal
        # before allocating (issue 16 items 5-9): counted apart, not a failure
        return "WARN-oom-caught" if oom else "error"
    if rc == 130:
        return "interrupted"
    return f"FAIL-exit-{rc}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default 60)")
    p.add_argument(
        "--memory", type=float, default=6.0, help="RLIMIT_AS per call in GiB (default 6)"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="stop starting new calls after this many seconds of wall time",
    )
    p.add_argument("--python", default=sys.executable)
    p.add_argument("-v", "--verbose", action="store_true", help="print every call as it runs")
    ns = p.parse_args(argv)

    rng = random.Random(ns.seed)
    mem = int(ns.memory * 2**30)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1", COLUMNS="100")
    env.pop("PYTHONWARNINGS", None)
    results = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="convmatrix-fuzz-") as root:
        fx = make_fixtures(root)
        os.mkdir(os.path.join(root, "out"))
        cwd = os.path.join(root, "cwd")
        os.mkdir(cwd)
        gen = Gen(rng, fx, root)
        cases = [gen.draw() for _ in range(ns.count)]
        for i, (cmd, args, valid) in enumerate(cases):
            if ns.budget is not None and time.monotonic() - t_start > ns.budget:
                print(
                    f"budget of {ns.budget:.0f} s reached: ran {i} of {ns.count} calls", flush=True
                )
                break
            argv_full = [ns.python, "-m", "convmatrix", *args]
            t0 = time.monotonic()
            proc = subprocess.Popen(
                argv_full,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=limit_memory(mem),
                start_new_session=True,
            )
            timed_out = False
            try:
                out, err = proc.communicate(timeout=ns.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            dt = time.monotonic() - t0
            out = out.decode("utf-8", "replace")
            err = err.decode("utf-8", "replace")
            cls = classify(proc.returncode, out, err, timed_out, valid)
            results.append((i, cmd, args, valid, proc.returncode, cls, dt, out, err))
            if ns.verbose or cls.startswith(("FAIL", "WARN")):
                print(
                    f"[{i:4d}] {cls:22s} rc={proc.returncode} {dt:6.1f}s "
                    f"convmatrix {shlex.join(args)}",
                    flush=True,
                )

    # summary
    elapsed = time.monotonic() - t_start
    classes = sorted({r[5] for r in results})
    table = collections.defaultdict(collections.Counter)
    for r in results:
        table[r[1]][r[5]] += 1
    w = max([len(c) for c in classes] + [8])
    print(
        f"\n{len(results)} calls (seed {ns.seed}, timeout {ns.timeout:g} s, "
        f"memory cap {ns.memory:g} GiB) in {elapsed:.0f} s"
    )
    print("subcommand".ljust(11) + "".join(c.rjust(w + 2) for c in classes) + "total".rjust(8))
    for cmd in SUBCOMMANDS:
        row = table.get(cmd, collections.Counter())
        print(
            cmd.ljust(11)
            + "".join(str(row[c]).rjust(w + 2) for c in classes)
            + str(sum(row.values())).rjust(8)
        )
    tot = collections.Counter(r[5] for r in results)
    print(
        "total".ljust(11)
        + "".join(str(tot[c]).rjust(w + 2) for c in classes)
        + str(len(results)).rjust(8)
    )
    valid_n = sum(1 for r in results if r[3])
    print(
        f"(built-as-valid requests: {valid_n}; of them ok: "
        f"{sum(1 for r in results if r[3] and r[5] == 'ok')})"
    )

    failures = [r for r in results if r[5].startswith("FAIL")]
    if failures:
        print(f"\n{len(failures)} FAILURES:")
        for i, cmd, args, valid, rc, cls, dt, out, err in failures:
            tail = [ln for ln in (err or out).strip().splitlines() if ln.strip()][-1:] or [""]
            print(
                f"[{i}] {cls} rc={rc} {dt:.1f}s\n    convmatrix {shlex.join(args)}\n"
                f"    last line: {tail[0][:300]}"
            )
    else:
        print("\nno failures")
    for i, cmd, args, valid, rc, cls, dt, out, err in results:
        if cls.startswith("WARN"):
            print(
                f"[{i}] {cls} rc={rc}\n    convmatrix {shlex.join(args)}\n    {err.strip()[:300]}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
