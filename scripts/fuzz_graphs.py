#!/usr/bin/env python
"""Randomised hostile torch networks against ``cm.from_torch`` graphs (issue 17).

Draws ``--count`` seeded random networks (float64) from residual sums/differences,
``out += identity``, concatenations on ``dim=1``/``dim=-3``/a spatial axis, ``chunk``/``split``
with negative indices, stepped and negative slices, ``view(-1)``/``flatten``/``reshape``,
constants as Python numbers and buffers (``*``, ``/``, ``+``, ``-``, reversed operands),
``mean(keepdim)``, adaptive and average pools, functional ``F.conv1d/2d`` with strides,
dilation, groups and padding strings, conv modules with every ``padding_mode``, batch norm in
eval, ``nn.Linear`` after a flatten, shared submodules applied twice, nested modules, and a few
hostile nodes (a ReLU, a product of two branches, an in-place write through a view of a value
used later). Each network is given to ``cm.from_torch`` as the module itself, as a
``GraphModule`` the user traced, or as a ``torch.export`` program, and classified:

  ok       read, and equal to live torch: ``matrix()`` vs ``torch.func.jacrev``, ``offset()``
           vs ``m(0)``, ``layer(x)`` vs ``m(x)``, ``operator()`` forward/adjoint against the
           matrix and a dot test, ``.T.matrix()`` vs the transpose; a ``max_bytes`` below the
           matrix's size is refused
  refused  a one-line ``ConvMatrixError`` naming the node (``node '...'``) or the module
  WRONG    read but differs from torch (a silent wrong answer), or a refusal that is not one
           line / names no node, or a guard that let a too-large matrix through
  crash    any other exception (a bare traceback)

A second family (``--misuse``, on by default) builds ``cm.Graph``/``cm.Add``/``cm.Concat``
wrongly (bad names, cycles, unknown inputs, shape mismatches, wrong op types, wrong arity):
each must be a one-line ``ConvMatrixError``.

Standalone script (not a test):  python scripts/fuzz_graphs.py --seed 0 --count 300
Exit status: 0 when nothing is WRONG or crashed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import random
import sys
import traceback
import warnings
from typing import Any

import numpy as np

import convmatrix as cm

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover
    sys.exit("fuzz_graphs needs torch")

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore")


# -- the random network ----------------------------------------------------------------------


class Program(nn.Module):
    """Runs ``steps`` (kind, input indices, params) over a list of values; fx unrolls it."""

    def __init__(self, steps: list[tuple[str, tuple[int, ...], dict[str, Any]]],
                 modules: list[nn.Module], consts: dict[str, torch.Tensor], out: int) -> None:
        super().__init__()
        self.steps = steps
        self.mods = nn.ModuleList(modules)
        for name, value in consts.items():
            self.register_buffer(name, value)
        self.out = out

    def forward(self, x):
        vals = [x]
        for kind, ins, p in self.steps:
            vals.append(apply_step(self, kind, [vals[i] for i in ins], p))
        return vals[self.out]


class Nested(nn.Module):
    """A parent that calls its child (twice when ``twice``) and adds the input back."""

    def __init__(self, child: nn.Module, twice: bool, residual: bool) -> None:
        super().__init__()
        self.child = child
        self.twice = twice
        self.residual = residual

    def forward(self, x):
        y = self.child(x)
        if self.twice:
            y = self.child(y)
        if self.residual:
            y = y + x
        return y


def apply_step(self: Program, kind: str, v: list[Any], p: dict[str, Any]) -> Any:
    a = v[0]
    if kind == "mod":
        return self.mods[p["idx"]](a)
    if kind == "fconv":
        w = getattr(self, p["w"])
        b = getattr(self, p["b"]) if p["b"] else None
        conv = F.conv1d if p["nd"] == 1 else F.conv2d
        return conv(a, w, b, p["stride"], p["padding"], p["dilation"], p["groups"])
    if kind == "add":
        return a + v[1]
    if kind == "sub":
        return a - v[1]
    if kind == "rsubb":
        return v[1] - a
    if kind == "addalpha":
        return torch.add(a, v[1], alpha=p["alpha"])
    if kind == "iadd":
        a += v[1]
        return a
    if kind == "isub":
        a -= v[1]
        return a
    if kind == "add_":
        return a.add_(v[1])
    if kind == "num":
        c, op = p["c"], p["op"]
        if op == "mul":
            return a * c
        if op == "rmul":
            return c * a
        if op == "div":
            return a / c
        if op == "add":
            return a + c
        if op == "radd":
            return c + a
        if op == "sub":
            return a - c
        if op == "rsub":
            return c - a
        if op == "neg":
            return -a
        if op == "torch.rsub":
            return torch.rsub(a, c)
        if op == "rdiv":
            return c / a
    if kind == "buf":
        c = getattr(self, p["name"])
        op = p["op"]
        if op == "mul":
            return a * c
        if op == "rmul":
            return c * a
        if op == "div":
            return a / c
        if op == "add":
            return a + c
        if op == "sub":
            return a - c
        if op == "rsub":
            return c - a
    if kind == "cat":
        return torch.cat(list(v), dim=p["dim"])
    if kind == "chunk":
        return torch.chunk(a, p["k"], dim=p["dim"])[p["i"]] if p["f"] else a.chunk(
            p["k"], p["dim"])[p["i"]]
    if kind == "split":
        return torch.split(a, p["size"], dim=p["dim"])[p["i"]]
    if kind == "getitem":
        return a[p["index"]]
    if kind == "view":
        how = p["how"]
        if how == "view-1":
            return a.view(a.size(0), -1)
        if how == "flatten":
            return torch.flatten(a, 1)
        if how == "reshape":
            return a.reshape(1, *p["shape"])
        if how == "unflatten":
            return a.view(-1, *p["shape"])
    if kind == "mean":
        return a.mean(dim=p["dim"], keepdim=p["keepdim"])
    if kind == "adaptive":
        f = F.adaptive_avg_pool1d if p["nd"] == 1 else F.adaptive_avg_pool2d
        return f(a, p["size"])
    if kind == "avgpool":
        f = F.avg_pool1d if p["nd"] == 1 else F.avg_pool2d
        return f(a, p["k"], p["s"], p["pad"], p["ceil"], p["cip"])
    if kind == "pad":
        return F.pad(a, p["pad"], mode=p["mode"])
    if kind == "interp":
        return F.interpolate(a, size=p["size"], mode=p["mode"])
    if kind == "fconvT":
        conv = F.conv_transpose1d if p["nd"] == 1 else F.conv_transpose2d
        return conv(a, getattr(self, p["w"]), None, p["stride"], p["padding"], p["outpad"],
                    p["groups"], p["dilation"])
    if kind == "detach":
        return a + a.detach()
    if kind == "relu":
        return torch.relu(a)
    if kind == "prod":
        return a * v[1]
    if kind == "viewmut":  # write through a view of a value that is returned/used later
        b = a[:, :1]
        b.mul_(p["c"])
        return a
    if kind == "mutin":  # in place on a value used again later
        a.mul_(p["c"])
        return a + v[1]
    if kind == "linear":
        return F.linear(a, getattr(self, p["w"]), getattr(self, p["b"]) if p["b"] else None)
    raise AssertionError(kind)


class Builder:
    """Grows a random program, tracking every value's shape by running it eagerly."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.steps: list[tuple[str, tuple[int, ...], dict[str, Any]]] = []
        self.modules: list[nn.Module] = []
        self.module_shapes: list[tuple[int, ...]] = []
        self.consts: dict[str, torch.Tensor] = {}
        self.hostile = False  # a node that must be refused (non-affine)
        nd = rng.choice([1, 2, 2])
        c = rng.randint(1, 4)
        spatial = tuple(rng.randint(3, 7) for _ in range(nd))
        self.input_shape = (c, *spatial)
        self.values = [torch.randn(1, *self.input_shape)]
        self.shadow = Program([], [], {}, 0)

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(self.values[i].shape[1:])

    def const(self, value: torch.Tensor) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        self.shadow.register_buffer(name, value)
        return name

    def try_add(self, kind: str, ins: tuple[int, ...], p: dict[str, Any]) -> bool:
        shadow = self.shadow
        shadow.mods = nn.ModuleList(self.modules)
        try:
            with torch.no_grad():
                out = apply_step(shadow, kind, [self.values[i].clone() for i in ins], p)
        except Exception:
            return False
        if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != 1 or \
                out.numel() == 0 or out.numel() > 400:
            return False
        self.steps.append((kind, ins, p))
        self.values.append(out)
        return True

    def pick(self, pred=lambda s: True) -> int | None:
        options = [i for i in range(len(self.values)) if pred(self.shape(i))]
        if not options:
            return None
        # prefer recent values (deeper networks), but reuse old ones (branches)
        return options[-1] if self.rng.random() < 0.5 else self.rng.choice(options)

    def same_shape_pair(self) -> tuple[int, int] | None:
        groups = collections.defaultdict(list)
        for i in range(len(self.values)):
            groups[self.shape(i)].append(i)
        pairs = [g for g in groups.values()]
        g = self.rng.choice(pairs)
        return self.rng.choice(g), self.rng.choice(g)

    # -- step generators --

    def conv_module(self) -> bool:
        rng = self.rng
        shared = [k for k, s in enumerate(self.module_shapes)]
        if shared and rng.random() < 0.3:  # a shared submodule, applied again
            k = rng.choice(shared)
            want = self.module_shapes[k]
            matches = [i for i in range(len(self.values)) if self.shape(i) == want or (
                isinstance(self.modules[k], nn.Conv1d | nn.Conv2d) and len(self.shape(i)) ==
                len(want) and self.shape(i)[0] == want[0])]
            if matches:
                return self.try_add("mod", (rng.choice(matches),), {"idx": k})
        i = self.pick(lambda s: len(s) in (2, 3))
        if i is None:
            return False
        s = self.shape(i)
        nd = len(s) - 1
        cin = s[0]
        choice = rng.random()
        groups = rng.choice([g for g in (1, 2, 3) if cin % g == 0])
        cout = groups * rng.randint(1, 3)
        k = rng.randint(1, 3)
        Conv = nn.Conv1d if nd == 1 else nn.Conv2d
        if choice < 0.5:
            mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
            pad = rng.choice([0, 1, 2, "same", "valid"])
            stride = 1 if pad == "same" else rng.randint(1, 2)
            mod = Conv(cin, cout, k, stride=stride, padding=pad, dilation=rng.randint(1, 2),
                       groups=groups, bias=rng.random() < 0.6, padding_mode=mode)
        elif choice < 0.65:
            CT = nn.ConvTranspose1d if nd == 1 else nn.ConvTranspose2d
            stride = rng.randint(1, 2)
            mod = CT(cin, cout, k, stride=stride, padding=rng.randint(0, k - 1),
                     output_padding=rng.randint(0, stride - 1), groups=groups,
                     bias=rng.random() < 0.5)
        elif choice < 0.75:
            mod = (nn.BatchNorm1d if nd == 1 else nn.BatchNorm2d)(cin)
            mod.running_mean.normal_()
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.normal_()
            mod.bias.data.normal_()
        elif choice < 0.82:
            mod = (nn.AdaptiveAvgPool1d if nd == 1 else nn.AdaptiveAvgPool2d)(
                rng.randint(1, 3) if nd == 1 else rng.choice(
                    [(rng.randint(1, 3), rng.randint(1, 3)), rng.randint(1, 3),
                     (None, rng.randint(1, 3)), (rng.randint(1, 3), None)]))
        elif choice < 0.88:
            mod = rng.choice([nn.Identity(), nn.Dropout(0.3), nn.Dropout2d(0.2)])
        elif choice < 0.94:
            mod = (nn.AvgPool1d if nd == 1 else nn.AvgPool2d)(
                2, stride=rng.randint(1, 2), padding=rng.randint(0, 1),
                ceil_mode=rng.random() < 0.3)
        else:
            mod = nn.Upsample(scale_factor=2, mode=rng.choice(["nearest", "linear"])
                              if nd == 1 else rng.choice(["nearest", "bilinear"]))
        mod.eval()
        self.modules.append(mod)
        self.module_shapes.append(s)
        if self.try_add("mod", (i,), {"idx": len(self.modules) - 1}):
            return True
        self.modules.pop()
        self.module_shapes.pop()
        return False

    def fconv(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) in (2, 3))
        if i is None:
            return False
        s = self.shape(i)
        nd = len(s) - 1
        cin = s[0]
        groups = rng.choice([g for g in (1, 2, 3) if cin % g == 0])
        cout = groups * rng.randint(1, 2)
        k = tuple(rng.randint(1, 3) for _ in range(nd))
        w = self.const(torch.randn(cout, cin // groups, *k))
        b = self.const(torch.randn(cout)) if rng.random() < 0.5 else None
        padding = rng.choice([0, 1, "same", "valid", tuple(rng.randint(0, 2) for _ in range(nd))])
        stride = 1 if padding == "same" else rng.choice(
            [1, 2, tuple(rng.randint(1, 2) for _ in range(nd))])
        dilation = rng.choice([1, 2, tuple(rng.randint(1, 2) for _ in range(nd))])
        return self.try_add("fconv", (i,), {"w": w, "b": b, "nd": nd, "stride": stride,
                                             "padding": padding, "dilation": dilation,
                                             "groups": groups})

    def binary(self) -> bool:
        pair = self.same_shape_pair()
        if pair is None:
            return False
        kind = self.rng.choice(["add", "add", "sub", "rsubb", "addalpha", "iadd", "isub",
                                "add_"])
        p = {"alpha": self.rng.choice([2, -0.5, 3.0])} if kind == "addalpha" else {}
        return self.try_add(kind, pair, p)

    def number(self) -> bool:
        i = self.pick()
        op = self.rng.choice(["mul", "rmul", "div", "add", "radd", "sub", "rsub", "neg",
                              "torch.rsub", "rdiv" if self.rng.random() < 0.1 else "mul"])
        if op == "rdiv":
            self.hostile = True
        c = self.rng.choice([2, -3, 0.5, 1.5, -0.25, 7])
        return self.try_add("num", (i,), {"c": c, "op": op})

    def buffer(self) -> bool:
        rng = self.rng
        i = self.pick()
        s = self.shape(i)
        form = rng.choice(["full", "channel", "scalar", "lastaxis", "batch1"])
        if form == "full":
            value = torch.randn(*s)
        elif form == "channel":
            value = torch.randn(s[0], *([1] * (len(s) - 1)))
        elif form == "scalar":
            value = torch.tensor(rng.choice([2.0, -0.5]))
        elif form == "lastaxis":
            value = torch.randn(s[-1])
        else:
            value = torch.randn(1, *s)
        op = rng.choice(["mul", "rmul", "div", "add", "sub", "rsub"])
        if op == "div":
            value = value.abs() + 0.5
        return self.try_add("buf", (i,), {"name": self.const(value), "op": op})

    def cat(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) >= 2)
        if i is None:
            return False
        s = self.shape(i)
        axis = rng.choice([0, 0, 0, 1])
        compatible = [j for j in range(len(self.values))
                      if len(self.shape(j)) == len(s)
                      and all(a == b for d, (a, b) in enumerate(zip(self.shape(j), s, strict=True))
                              if d != axis)]
        parts = tuple(rng.choice(compatible) for _ in range(rng.randint(2, 3)))
        ndim = len(s) + 1
        dim = rng.choice([axis + 1, axis + 1 - ndim])
        return self.try_add("cat", (i, *parts[1:]), {"dim": dim})

    def split(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) >= 2 or (len(s) == 1 and s[0] >= 2))
        if i is None:
            return False
        s = self.shape(i)
        axis = rng.randrange(len(s))
        n = s[axis]
        dim = rng.choice([axis + 1, axis - len(s)])
        if rng.random() < 0.5:
            k = rng.randint(1, max(1, n))
            count = len(torch.chunk(torch.empty(n), k))
            return self.try_add("chunk", (i,), {"k": k, "dim": dim, "f": rng.random() < 0.5,
                                                "i": rng.randrange(-count, count)})
        if rng.random() < 0.5:
            size = rng.randint(1, n)
            count = -(-n // size)
        else:
            cuts = sorted(rng.sample(range(1, n), rng.randint(0, min(2, n - 1)))) if n > 1 else []
            bounds = [0, *cuts, n]
            size = [b - a for a, b in itertools.pairwise(bounds)]
            count = len(size)
        return self.try_add("split", (i,), {"size": size, "dim": dim,
                                            "i": rng.randrange(-count, count)})

    def getitem(self) -> bool:
        rng = self.rng
        i = self.pick()
        s = self.shape(i)
        items: list[Any] = [slice(None)]
        for n in s:
            r = rng.random()
            if r < 0.4:
                items.append(slice(None))
            elif r < 0.8:
                start = rng.choice([None, rng.randint(-n, n - 1)])
                stop = rng.choice([None, rng.randint(-n, n + 2)])
                step = rng.choice([None, 1, 2, 3])
                items.append(slice(start, stop, step))
            elif r < 0.9:
                items.append(rng.randint(-n, n - 1))
            else:
                items.append(None)
                items.append(slice(None))
        if rng.random() < 0.3 and len(items) > 2:
            items = [items[0], Ellipsis, items[-1]]
        return self.try_add("getitem", (i,), {"index": tuple(items)})

    def view(self) -> bool:
        rng = self.rng
        i = self.pick()
        s = self.shape(i)
        how = rng.choice(["view-1", "flatten", "reshape", "unflatten"])
        n = int(np.prod(s))
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        d = rng.choice(divisors)
        shape = rng.choice([(d, -1), (d, n // d), (-1,), (d, 1, n // d)])
        return self.try_add("view", (i,), {"how": how, "shape": shape})

    def mean(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) >= 2)
        if i is None:
            return False
        s = self.shape(i)
        ndim = len(s) + 1
        spatial = list(range(2, ndim))
        form = rng.random()
        if form < 0.7:
            dim = rng.choice([tuple(spatial), tuple(d - ndim for d in spatial),
                              tuple(reversed(spatial)), list(spatial)])
            if len(spatial) == 1 and rng.random() < 0.5:
                dim = spatial[0]
        else:
            dim = rng.choice([1, -1, (1, 2)])  # not a global pool: refused (or read exactly)
        return self.try_add("mean", (i,), {"dim": dim, "keepdim": rng.random() < 0.5})

    def pool(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) in (2, 3))
        if i is None:
            return False
        s = self.shape(i)
        nd = len(s) - 1
        if rng.random() < 0.5:
            size = rng.randint(1, 4) if nd == 1 else rng.choice(
                [rng.randint(1, 4), (rng.randint(1, 4), rng.randint(1, 4))])
            return self.try_add("adaptive", (i,), {"nd": nd, "size": size})
        return self.try_add("avgpool", (i,), {"nd": nd, "k": 2, "s": rng.randint(1, 2),
                                              "pad": rng.randint(0, 1),
                                              "ceil": rng.random() < 0.3,
                                              "cip": rng.random() < 0.5})

    def pad(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) in (2, 3))
        if i is None:
            return False
        nd = len(self.shape(i)) - 1
        pad = tuple(rng.randint(0, 2) for _ in range(2 * nd))
        return self.try_add("pad", (i,), {"pad": pad, "mode": rng.choice(
            ["constant", "reflect", "replicate", "circular"])})

    def resample(self) -> bool:
        rng = self.rng
        i = self.pick(lambda s: len(s) in (2, 3))
        if i is None:
            return False
        s = self.shape(i)
        nd = len(s) - 1
        if rng.random() < 0.5:
            size = tuple(rng.randint(2, 8) for _ in range(nd))
            mode = rng.choice(["nearest", "linear" if nd == 1 else "bilinear"])
            return self.try_add("interp", (i,), {"size": size, "mode": mode})
        groups = rng.choice([g for g in (1, 2) if s[0] % g == 0])
        stride = rng.randint(1, 3)
        dilation = rng.randint(1, 2)
        return self.try_add("fconvT", (i,), {
            "w": self.const(torch.randn(s[0], rng.randint(1, 2), *([rng.randint(1, 3)] * nd))),
            "nd": nd, "stride": stride, "padding": rng.randint(0, 1),
            "outpad": rng.randint(0, min(stride, dilation) - 1), "groups": groups,
            "dilation": dilation})

    def linear(self) -> bool:
        i = self.pick(lambda s: len(s) == 1)
        if i is None:
            return False
        n = self.shape(i)[0]
        out = self.rng.randint(1, 6)
        w = self.const(torch.randn(out, n))
        b = self.const(torch.randn(out)) if self.rng.random() < 0.5 else None
        return self.try_add("linear", (i,), {"w": w, "b": b})

    def hostile_step(self) -> bool:
        rng = self.rng
        kind = rng.choice(["relu", "prod", "viewmut", "mutin", "detach"])
        i = self.pick()
        if kind in ("relu", "detach"):
            ok = self.try_add(kind, (i,), {})
        elif kind == "prod":
            pair = self.same_shape_pair()
            ok = pair is not None and self.try_add("prod", pair, {})
        elif kind == "viewmut":
            ok = len(self.shape(i)) >= 1 and i != 0 and self.try_add("viewmut", (i,),
                                                                     {"c": 3.0})
        else:
            pair = self.same_shape_pair()
            ok = pair is not None and pair[0] != 0 and self.try_add("mutin", pair, {"c": 2.0})
        if ok:
            self.hostile = True
        return ok

    def build(self) -> nn.Module:
        rng = self.rng
        gens = [(self.conv_module, 5), (self.fconv, 3), (self.binary, 4), (self.number, 2),
                (self.buffer, 2), (self.cat, 3), (self.split, 3), (self.getitem, 2),
                (self.view, 1.5), (self.mean, 1), (self.pool, 1), (self.pad, 1),
                (self.linear, 2), (self.resample, 1), (self.hostile_step, 0.35)]
        fns, weights = zip(*gens, strict=True)
        target = rng.randint(1, 7)
        tries = 0
        while len(self.steps) < target and tries < 60:
            tries += 1
            fn = rng.choices(fns, weights)[0]
            if all(len(self.shape(i)) == 0 for i in range(len(self.values))):
                break
            try:
                fn()
            except (IndexError, ValueError):  # a draw that does not fit the values' shapes
                pass
        out = len(self.values) - 1 if rng.random() < 0.85 else rng.randrange(len(self.values))
        program = Program(self.steps, self.modules, self.consts, out)
        return program.eval()


# -- checks --------------------------------------------------------------------------------


class Wrong(Exception):
    pass


def close(a: np.ndarray, b: np.ndarray, what: str, tol: float = 1e-9) -> None:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise Wrong(f"{what}: shape {a.shape} vs torch {b.shape}")
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    err = float(np.abs(a - b).max(initial=0.0))
    if not err <= tol * scale:
        raise Wrong(f"{what}: max error {err:.3g} (scale {scale:.3g})")


def torch_truth(module: Any, shape: tuple[int, ...], x: np.ndarray):
    call = module.module() if hasattr(module, "module") and not isinstance(
        module, nn.Module) else module

    def f(v):
        return call(v.reshape(1, *shape).clone()).reshape(-1)

    n = int(np.prod(shape))
    with torch.no_grad():
        y0 = f(torch.zeros(n)).numpy().copy()
        yx = f(torch.from_numpy(x.reshape(-1)).clone()).numpy().copy()
    try:
        jac = torch.func.jacrev(f)(torch.zeros(n)).detach().numpy()
    except Exception:  # in-place on views etc.: columns by unit vectors (the map is affine)
        with torch.no_grad():
            jac = np.stack([f(torch.eye(n)[j]).numpy() - y0 for j in range(n)], axis=1)
    return jac, y0, yx


def check(layer: cm.Layer, module: Any, shape: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape)
    jac, y0, yx = torch_truth(module, shape, x)
    if tuple(layer.input_shape) != shape:
        raise Wrong(f"input_shape {layer.input_shape} vs {shape}")
    m = layer.matrix().toarray()
    close(m, jac, "matrix vs jacrev")
    close(np.asarray(layer.offset()).reshape(-1), y0, "offset vs m(0)")
    close(np.asarray(layer(x)).reshape(-1), yx, "layer(x) vs m(x)")
    # torch's own affinity (a reader that accepted a non-affine node shows here)
    close(jac @ x.reshape(-1) + y0, yx, "torch is not affine here (accepted a non-affine node)",
          tol=1e-8)
    op = layer.operator()
    v = rng.standard_normal(m.shape[1])
    u = rng.standard_normal(m.shape[0])
    close(op.matvec(v), m @ v, "operator matvec")
    close(op.rmatvec(u), m.T @ u, "operator rmatvec")
    lhs, rhs = float(u @ op.matvec(v)), float(op.rmatvec(u) @ v)
    if abs(lhs - rhs) > 1e-9 * max(1.0, abs(lhs)):
        raise Wrong(f"operator dot test {lhs} vs {rhs}")
    close(layer.T.matrix().toarray(), m.T, ".T matrix")
    # the rest of a Layer's surface: a result or a one-line refusal, never a traceback
    str(layer.explain())
    str(layer)
    for extra in ("overlap_counts", "checkerboard"):
        try:
            getattr(layer, extra)()
        except cm.ConvMatrixError as error:
            if "\n" in str(error).strip():
                raise Wrong(f"{extra}: refusal is not one line: {error!r}") from None
    # max_bytes: a matrix larger than the budget must be refused, naming max_bytes
    size = m.size * 8
    if np.count_nonzero(m) > 4:
        try:
            layer.matrix(max_bytes=64)
        except cm.ConvMatrixError as error:
            if "max_bytes" not in str(error):
                raise Wrong(f"memory refusal does not name max_bytes: {error}") from None
        else:
            raise Wrong(f"matrix(max_bytes=64) built a matrix of {np.count_nonzero(m)} "
                        f"entries ({size} dense bytes)")


def as_given(module: nn.Module, shape: tuple[int, ...], rng: random.Random) -> tuple[str, Any]:
    r = rng.random()
    if r < 0.15:
        return "nested", Nested(module, twice=False, residual=True).eval()
    if r < 0.35:
        return "fx", torch.fx.symbolic_trace(module)
    if r < 0.45:
        try:
            return "export", torch.export.export(module, (torch.randn(1, *shape),))
        except Exception as error:  # torch refuses to export it: not convmatrix's business
            return "export-failed", f"{type(error).__name__}"
    if r < 0.5:
        return "sequential", nn.Sequential(module, nn.Identity()).eval()
    return "module", module


def one_line(text: str) -> bool:
    return "\n" not in text.strip()


def run_one(seed: int, index: int, verbose: bool) -> tuple[str, str]:
    rng = random.Random(f"{seed}:{index}")
    torch.manual_seed(rng.randrange(2**31))
    builder = Builder(rng)
    program = builder.build()
    shape = builder.input_shape
    how, module = as_given(program, shape, rng)
    if how == "export-failed":
        return "skipped", f"torch.export failed: {module}"
    label = f"[{how}] {describe(builder)}"
    try:
        layer = cm.from_torch(module, shape)
    except cm.ConvMatrixError as error:
        text = str(error)
        if not one_line(text):
            return "WRONG", f"{label}: refusal is not one line: {text!r}"
        if "node" not in text and "`module`" not in text and "module" not in text:
            return "WRONG", f"{label}: refusal names no node: {text}"
        return "refused", f"{label}: {text}"
    except Exception as error:
        tb = traceback.format_exc(limit=-3) if verbose else ""
        return "crash", f"{label}: from_torch: {type(error).__name__}: {error}\n{tb}"
    try:
        check(layer, module, shape, np.random.default_rng(index))
    except Wrong as error:
        return "WRONG", f"{label}: {error}{' (hostile)' if builder.hostile else ''}"
    except cm.ConvMatrixError as error:
        return "crash", f"{label}: read, then refused on use: {error}"
    except Exception as error:
        tb = traceback.format_exc(limit=-3) if verbose else ""
        return "crash", f"{label}: {type(error).__name__}: {error}\n{tb}"
    return "ok", label


def describe(builder: Builder) -> str:
    parts = []
    for kind, ins, p in builder.steps:
        if kind == "mod":
            parts.append(f"{type(builder.modules[p['idx']]).__name__}{ins}")
        elif kind in ("num", "buf"):
            parts.append(f"{kind}.{p['op']}{ins}")
        elif kind == "view":
            parts.append(f"view.{p['how']}{ins}")
        else:
            parts.append(f"{kind}{ins}")
    return f"{builder.input_shape} " + " ".join(parts)


# -- Graph constructor misuse ----------------------------------------------------------------


def misuse_cases(rng: random.Random) -> list[tuple[str, Any]]:
    shape = (2, 5)
    conv = cm.Conv(np.ones((2, 2, 3)), shape, padding=1)
    shrink = cm.Conv(np.ones((2, 2, 3)), shape)
    ident = cm.Identity(shape)
    other = cm.Identity((3, 5))
    N = cm.Node
    cases = [
        ("duplicate name", lambda: cm.Graph(shape, [N("a", conv, ("input",)),
                                                    N("a", conv, ("input",))], "a")),
        ("name is the input", lambda: cm.Graph(shape, [N("input", conv, ("input",))], "input")),
        ("self cycle", lambda: cm.Graph(shape, [N("a", conv, ("a",))], "a")),
        ("two-node cycle", lambda: cm.Graph(shape, [N("a", conv, ("b",)),
                                                    N("b", conv, ("a",))], "b")),
        ("forward reference", lambda: cm.Graph(shape, [N("s", cm.Sum((1, 1)), ("a", "input")),
                                                       N("a", conv, ("input",))], "s")),
        ("unknown input", lambda: cm.Graph(shape, [N("a", conv, ("nope",))], "a")),
        ("unknown output", lambda: cm.Graph(shape, [N("a", conv, ("input",))], "b")),
        ("output not str", lambda: cm.Graph(shape, [N("a", conv, ("input",))], 3)),
        ("layer shape mismatch", lambda: cm.Graph(shape, [N("a", other, ("input",))], "a")),
        ("sum shape mismatch", lambda: cm.Graph(shape, [N("a", shrink, ("input",)),
                                                        N("s", cm.Sum((1, 1)), ("a", "input"))],
                                                "s")),
        ("sum arity", lambda: cm.Graph(shape, [N("s", cm.Sum((1, 1, 1)), ("input", "input"))],
                                       "s")),
        ("sum no inputs", lambda: cm.Graph(shape, [N("s", cm.Sum((1,)), ())], "s")),
        ("cat mismatch", lambda: cm.Graph(shape, [N("a", shrink, ("input",)),
                                                  N("c", cm.Cat(0), ("a", "input"))], "c")),
        ("cat axis out of range", lambda: cm.Graph(shape, [N("c", cm.Cat(5), ("input", "input"))],
                                                   "c")),
        ("cat negative axis out of range", lambda: cm.Graph(
            shape, [N("c", cm.Cat(-3), ("input", "input"))], "c")),
        ("cat no inputs", lambda: cm.Graph(shape, [N("c", cm.Cat(0), ())], "c")),
        ("layer two inputs", lambda: cm.Graph(shape, [N("a", conv, ("input", "input"))], "a")),
        ("layer no inputs", lambda: cm.Graph(shape, [N("a", conv, ())], "a")),
        ("op is a function", lambda: cm.Graph(shape, [N("a", np.sum, ("input",))], "a")),
        ("op is a torch module", lambda: N("a", torch.nn.Identity(), ("input",))),
        ("op is a class", lambda: N("a", cm.Identity, ("input",))),
        ("node not a Node", lambda: cm.Graph(shape, [("a", conv, ("input",))], "a")),
        ("nodes is a Node", lambda: cm.Graph(shape, N("a", conv, ("input",)), "a")),
        ("nodes is None", lambda: cm.Graph(shape, None, "input")),
        ("empty name", lambda: N("", conv, ("input",))),
        ("name not str", lambda: N(3, conv, ("input",))),
        ("inputs hold ints", lambda: N("a", conv, (0,))),
        ("inputs is None", lambda: N("a", conv, None)),
        ("input name empty", lambda: cm.Graph(shape, [N("a", conv, ("",))], "a", input="")),
        ("input name not str", lambda: cm.Graph(shape, [N("a", conv, ("input",))], "a",
                                                input=None)),
        ("input_shape zero", lambda: cm.Graph((0, 5), [], "input")),
        ("input_shape str", lambda: cm.Graph("2x5", [], "input")),
        ("input_shape float", lambda: cm.Graph((2.0, 5), [], "input")),
        ("input_shape empty", lambda: cm.Graph((), [], "input")),
        ("input_shape huge", lambda: cm.Graph((10**9, 10**9), [], "input").matrix()),
        ("sum coefficients str", lambda: cm.Sum("11")),
        ("sum coefficients nan", lambda: cm.Sum((1, float("nan")))),
        ("sum coefficients bool", lambda: cm.Sum((True, 1))),
        ("sum coefficients complex", lambda: cm.Sum((1j, 1))),
        ("sum empty", lambda: cm.Sum(())),
        ("cat axis float", lambda: cm.Cat(0.0)),
        ("cat axis str", lambda: cm.Cat("0")),
        ("Add nothing", lambda: cm.Add()),
        ("Add shape mismatch", lambda: cm.Add(conv, shrink)),
        ("Add input mismatch", lambda: cm.Add(conv, other)),
        ("Add a module", lambda: cm.Add(conv, torch.nn.Identity())),
        ("Add a list", lambda: cm.Add([conv, ident])),
        ("Concat mismatch", lambda: cm.Concat([conv, cm.Identity((2, 4))])),
        ("Concat input mismatch", lambda: cm.Concat([conv, other])),
        ("Concat axis out of range", lambda: cm.Concat([conv, ident], axis=3)),
        ("Concat axis bool", lambda: cm.Concat([conv, ident], axis=True)),
        ("Concat not a list", lambda: cm.Concat(conv)),
        ("Concat empty", lambda: cm.Concat([])),
        ("Concat a module", lambda: cm.Concat([conv, torch.nn.Identity()])),
        ("huge graph matrix", lambda: cm.Add(
            cm.Conv(np.ones((64, 64, 3, 3)), (64, 512, 512), padding=1),
            cm.Identity((64, 512, 512))).matrix(max_bytes=10**6)),
        ("huge graph operator", lambda: cm.Add(
            cm.Conv(np.ones((64, 64, 3, 3)), (64, 512, 512), padding=1),
            cm.Identity((64, 512, 512))).operator(max_bytes=10**6).matmat(
                np.zeros((64 * 512 * 512, 64)))),
        ("from_torch shape str", lambda: cm.from_torch(torch.nn.Identity(), "2,5")),
        ("from_torch shape negative", lambda: cm.from_torch(torch.nn.Conv1d(2, 2, 3), (2, -5))),
        ("from_torch two inputs", lambda: cm.from_torch(_TwoInputs(), (2, 5))),
        ("from_torch two outputs", lambda: cm.from_torch(_TwoOutputs(), (2, 5))),
        ("from_torch constant output", lambda: cm.from_torch(_Constant(), (2, 5))),
        ("from_torch data-dependent control flow", lambda: cm.from_torch(_Branchy(), (2, 5))),
        ("from_torch wrong input_shape", lambda: cm.from_torch(
            torch.fx.symbolic_trace(_Flat()), (3, 5))),
        ("from_torch softmax", lambda: cm.from_torch(_Softmax(), (2, 5))),
    ]
    rng.shuffle(cases)
    return cases


class _TwoInputs(nn.Module):
    def forward(self, x, y):
        return x + y


class _TwoOutputs(nn.Module):
    def forward(self, x):
        return x, x * 2


class _Constant(nn.Module):
    def forward(self, x):
        return torch.ones(1, 2, 5)


class _Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


class _Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(10, 3)

    def forward(self, x):
        return self.lin(x.view(1, 10))


class _Softmax(nn.Module):
    def forward(self, x):
        return torch.softmax(x, 1) + x


def run_misuse(seed: int, verbose: bool) -> list[tuple[str, str]]:
    results = []
    for name, make in misuse_cases(random.Random(seed)):
        try:
            make()
        except cm.ConvMatrixError as error:
            text = str(error)
            status = "refused" if one_line(text) else "WRONG"
            results.append((status, f"misuse {name}: {text}"))
        except Exception as error:
            tb = traceback.format_exc(limit=-2) if verbose else ""
            results.append(("crash", f"misuse {name}: {type(error).__name__}: {error}\n{tb}"))
        else:
            results.append(("WRONG", f"misuse {name}: accepted"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--no-misuse", action="store_true")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--show", default="WRONG,crash",
                        help="comma-separated classes to print (default WRONG,crash)")
    args = parser.parse_args(argv)
    show = set(args.show.split(","))
    counts: collections.Counter[str] = collections.Counter()
    results = [] if args.no_misuse else run_misuse(args.seed, args.verbose)
    for status, text in results:
        counts["misuse-" + status] += 1
        if status in show:
            print(f"{status}: {text}")
    for index in range(args.count):
        status, text = run_one(args.seed, index, args.verbose)
        counts[status] += 1
        if status in show:
            print(f"{status} #{index}: {text}", flush=True)
    print(f"seed {args.seed}, {args.count} networks: " + ", ".join(
        f"{k} {counts[k]}" for k in ("ok", "refused", "WRONG", "crash", "skipped")) +
        "; misuse: " + ", ".join(f"{k[7:]} {v}" for k, v in sorted(counts.items())
                                 if k.startswith("misuse-")))
    bad = counts["WRONG"] + counts["crash"] + counts["misuse-WRONG"] + counts["misuse-crash"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
