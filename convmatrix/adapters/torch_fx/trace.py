"""A torch network as a ``GraphModule``: traced once and cached, run in another dtype, checked.

:func:`graph_module` takes the user's ``GraphModule``, an ``ExportedProgram``'s, or traces the
module with ``torch.fx.symbolic_trace`` (kept for the next read while its submodules are the
same); :func:`in_dtype` runs a function with the floating parameters seen in another dtype
(the module untouched); :func:`trace_differs_once` checks that the trace computes what the
module's forward does.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convmatrix._errors import ConvMatrixError

__all__ = ["graph_module", "in_dtype", "module_dtype", "trace_differs_once"]


@dataclass
class _Trace:
    """A traced module kept for the next read: the key it was traced under, and checks done."""

    key: tuple[Any, ...]
    gm: Any
    differs: dict[tuple[Any, ...], bool] = field(default_factory=dict)


_TRACES: weakref.WeakKeyDictionary[Any, _Trace] = weakref.WeakKeyDictionary()
"""module → its trace: a module is traced once while its submodules are the same objects with
the same plain settings (``training``, flags such as ``inplace``), so reading or linearising it
at many points traces once and checks the trace once."""


def _trace_key(module: Any) -> tuple[Any, ...]:
    """What a trace depends on besides the classes: the submodules and their plain attributes."""
    plain = (bool, int, float, str, type(None))
    return tuple((name, id(sub), tuple(sorted((k, v) for k, v in vars(sub).items()
                                              if isinstance(v, plain))))
                 for name, sub in module.named_modules())


def graph_module(module: Any, parameter: str = "module") -> tuple[Any, _Trace | None]:
    """A GraphModule for the module: the user's own, an ExportedProgram's, or a (cached) trace.

    The second item is the cache entry of a trace made here (None for the user's own graph).
    """
    import torch

    if any(cls.__name__ == "ExportedProgram" for cls in type(module).__mro__):
        return module.module(), None
    if isinstance(module, torch.fx.GraphModule):
        return module, None
    if not isinstance(module, torch.nn.Module):
        raise ConvMatrixError(
            f"`{parameter}` (={type(module).__name__}) is not a torch.nn.Module, GraphModule or "
            f"ExportedProgram")
    key = _trace_key(module)
    try:
        cached = _TRACES.get(module)
    except TypeError:  # pragma: no cover - an unhashable module
        cached = None
    if cached is not None and cached.key == key:
        return cached.gm, cached
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as error:  # TraceError, data-dependent control flow, ...
        raise ConvMatrixError(
            f"`{parameter}` ({type(module).__name__}) could not be traced by torch.fx, so its "
            f"graph cannot be read: {type(error).__name__}: {str(error).splitlines()[0]}"
        ) from None
    entry = _Trace(key, gm)
    try:
        _TRACES[module] = entry
    except TypeError:  # pragma: no cover
        pass
    return gm, entry


def _holder_class() -> Any:
    """An ``nn.Module`` holding the roots whose forward is a given function (made once)."""
    global _HOLDER
    if _HOLDER is None:
        import torch

        class Holder(torch.nn.Module):  # type: ignore[misc]
            def __init__(self, roots: list[Any], fn: Callable[[], Any]) -> None:
                super().__init__()
                self.roots = torch.nn.ModuleList(roots)
                self.fn = fn

            def forward(self) -> Any:
                return self.fn()

        _HOLDER = Holder
    return _HOLDER


_HOLDER: Any = None


def in_dtype(root: Any, dtype: Any, fn: Callable[[], Any]) -> Any:
    """``fn()`` with the floating parameters and buffers of ``root`` seen in ``dtype``.

    ``torch.func.functional_call`` swaps converted copies in for the call only, each
    (module, attribute) once even when a module is reachable by two paths, so the modules are
    exactly as before afterwards (no ``.double()`` on the user's model). A module already in
    ``dtype`` is called directly.
    """
    import torch

    holder = _holder_class()([root], fn)
    state: dict[str, Any] = {}
    converted: dict[int, Any] = {}
    for path, sub in holder.named_modules():  # each module once
        for name, tensor in (*sub.named_parameters(recurse=False, remove_duplicate=False),
                             *sub.named_buffers(recurse=False, remove_duplicate=False)):
            if tensor is None or not tensor.is_floating_point() or tensor.dtype == dtype:
                continue
            if id(tensor) not in converted:  # tied tensors stay tied
                converted[id(tensor)] = tensor.detach().to(dtype)
            state[f"{path}.{name}" if path else name] = converted[id(tensor)]
    if not state:
        return fn()
    return torch.func.functional_call(holder, state, (), tie_weights=False)


def _trace_differs(module: Any, gm: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether fx's trace computes something else than the module's own forward.

    ``torch.fx`` records ``a += b`` on a traced value as ``a + b`` (a Proxy has no in-place
    operators): when ``a`` is used again later the module reads the changed value, the trace
    the old one. Both run on one seeded random sample.
    """
    import torch

    probe = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        try:
            want, got = module(probe.clone()), gm(probe.clone())
        except Exception:  # the module's own failure is reported where the trace runs
            return False
    while isinstance(want, list | tuple) and len(want) == 1:
        want = want[0]
    while isinstance(got, list | tuple) and len(got) == 1:
        got = got[0]
    if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor):
        return False
    if want.shape != got.shape:
        return True
    finite = want[torch.isfinite(want)]
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    return not torch.allclose(got, want, rtol=1e-5, atol=1e-6 * max(scale, 1.0), equal_nan=True)


def module_dtype(module: Any) -> Any:
    """The dtype of the module's first floating parameter or buffer (else torch's default)."""
    import torch

    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    for tensor in module.buffers():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def trace_differs_once(entry: _Trace | None, module: Any, gm: Any, shape: tuple[int, ...],
                       dtype: Any) -> bool:
    """:func:`_trace_differs`, asked once per cached trace, shape and dtype."""
    if entry is None:
        return _trace_differs(module, gm, shape, dtype)
    key = (shape, dtype)
    if key not in entry.differs:
        entry.differs[key] = _trace_differs(module, gm, shape, dtype)
    return entry.differs[key]
