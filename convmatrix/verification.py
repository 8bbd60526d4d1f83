"""Numerical proof of a layer's matrix: reference comparisons and the adjoint (dot-product) test."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, SupportsIndex

import numpy as np

from convmatrix import reference
from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import spec_matrix
from convmatrix.builder.weights import as_weight
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import ConvSpec, conv_spec, conv_transpose_spec, per_axis
from convmatrix.geometry.view import direction_keyword
from convmatrix.typing import ArrayLike, Direction, IntOrSeq, PaddingArg, PaddingMode, ShapeLike

__all__ = [
    "Check",
    "VerificationError",
    "VerificationResult",
    "dot_test",
    "verify",
    "verify_spec",
]


class VerificationError(AssertionError):
    """A verification check failed; the message shows both sides."""


@dataclass(frozen=True)
class Check:
    """One comparison: what was compared, the errors, the tolerance and the verdict."""

    name: str
    max_abs_error: float
    max_rel_error: float
    tolerance: float
    expected: np.ndarray = field(repr=False)
    actual: np.ndarray = field(repr=False)

    @property
    def passed(self) -> bool:
        """True when the relative error is within the tolerance."""
        return bool(self.max_rel_error <= self.tolerance)

    def failure_message(self) -> str:
        """Both sides of the comparison, for an assertion message."""
        with np.printoptions(threshold=60, edgeitems=5, precision=8):
            return (f"{self.name}: max abs error {self.max_abs_error:.3e}, max rel error "
                    f"{self.max_rel_error:.3e} > tolerance {self.tolerance:.1e}\n"
                    f"expected: {self.expected}\nactual:   {self.actual}")


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :func:`verify`: one :class:`Check` per comparison; prints as a table.

    Attributes
    ----------
    layer : str
        Human-readable description of the verified layer.
    checks : tuple of Check
        The comparisons, in the order run.
    """

    layer: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def raise_if_failed(self) -> VerificationResult:
        """Raise :class:`VerificationError` showing both sides of every failed check."""
        failed = [check.failure_message() for check in self.checks if not check.passed]
        if failed:
            raise VerificationError(f"{self.layer}\n" + "\n".join(failed))
        return self

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        return [(c.name, f"{c.max_abs_error:.2e}", f"{c.max_rel_error:.2e}",
                 f"{c.tolerance:.0e}", "pass" if c.passed else "FAIL") for c in self.checks]

    def __str__(self) -> str:
        header = ("check", "max abs err", "max rel err", "tolerance", "result")
        rows = [header, *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [self.layer]
        for k, row in enumerate(rows):
            cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append(f"=> {'all checks passed' if self.passed else 'FAILED'}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The result as a Markdown table (used by reports)."""
        lines = ["| check | max abs error | max rel error | tolerance | result |",
                 "|---|---:|---:|---:|---|"]
        lines += [f"| {' | '.join(row)} |" for row in self._rows()]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return f"**{self.layer}**\n\n{self.to_markdown()}"


def _tolerance(dtype: np.dtype[Any]) -> float:
    """Default relative tolerance: exact for integers, float32-sized or float64-sized."""
    if dtype.kind in "biu":
        return 0.0
    return 1e-4 if dtype in (np.float32, np.complex64) else 1e-10


def _random(shape: Sequence[int], dtype: np.dtype[Any], rng: np.random.Generator) -> np.ndarray:
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0 if dtype.kind == "u" else -3, 4, size=shape).astype(dtype)
    values = rng.standard_normal(shape)
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def _compare(name: str, expected: np.ndarray, actual: np.ndarray, tol: float) -> Check:
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return Check(f"{name} (shape {actual.shape} != {expected.shape})", math.inf, math.inf,
                     tol, expected, actual)
    diff = np.abs(actual.astype(complex if actual.dtype.kind == "c" else float)
                  - expected.astype(complex if expected.dtype.kind == "c" else float))
    abs_err = float(diff.max(initial=0.0))
    scale = float(np.abs(expected).max(initial=0.0))
    rel_err = abs_err / scale if scale > 0 else abs_err
    return Check(name, abs_err, rel_err, tol, expected, actual)


def dot_test(
    matrix: Any, *, seed: int = 0, tolerance: float = 1e-10, adjoint: Any = None
) -> Check:
    """Adjoint (dot-product) test ``⟨A u, v⟩ = ⟨u, Aᵀ v⟩`` on random vectors.

    Parameters
    ----------
    matrix : sparse array or linear operator
        ``A``, anything with ``@`` and ``.shape``.
    seed : int, optional
        Seed of the random vectors.
    tolerance : float, optional
        Allowed ``|⟨A u, v⟩ − ⟨u, Aᵀ v⟩| / (‖A u‖·‖v‖)``.
    adjoint : sparse array or linear operator, optional
        ``Aᵀ`` computed another way (e.g. a transposed-convolution matrix built separately);
        default ``matrix.T``.

    Returns
    -------
    Check
        ``expected`` is ``⟨A u, v⟩``, ``actual`` is ``⟨u, Aᵀ v⟩``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(np.arange(9.0).reshape(1, 1, 3, 3), (1, 5, 5), stride=2, padding=1)
    >>> dot_test(C).passed
    True
    """
    tolerance = _check_tolerance(tolerance, np.dtype(np.float64))
    rng = np.random.default_rng(seed)
    transposed = matrix.T if adjoint is None else adjoint
    if np.dtype(matrix.dtype).kind in "biu":  # exact integer arithmetic, native speed
        u = rng.integers(-3, 4, matrix.shape[1])
        v = rng.integers(-3, 4, matrix.shape[0])
        if np.dtype(matrix.dtype).kind == "b":
            matrix, transposed = matrix.astype(np.int64), transposed.astype(np.int64)
    else:
        u = rng.standard_normal(matrix.shape[1])
        v = rng.standard_normal(matrix.shape[0])
    au = matrix @ u
    # exactly rounded sums (math.fsum), so the figure does not depend on the BLAS in use
    lhs = math.fsum(np.real(np.conj(v) * au).tolist())
    rhs = math.fsum(np.real(np.conj(transposed @ v) * u).tolist())
    scale = float(np.linalg.norm(au) * np.linalg.norm(v)) or 1.0
    err = abs(lhs - rhs)
    return Check("adjoint: ⟨C x, y⟩ = ⟨x, Cᵀ y⟩", err, err / scale, tolerance,
                 np.array(lhs), np.array(rhs))


_MODERATE = 2.0 ** 200


def _moderate(weight: np.ndarray) -> np.ndarray:
    """Float weights beyond ``2**±200`` divided by a power of two near their largest entry.

    Every check is linear in the weight and compares relatively, so the verdict is the same;
    the division is exact (short of subnormals), and sums such as ``⟨C x, y⟩`` with weights
    near 1e308 no longer overflow to ``inf − inf``. Integer weights are exact anyway.
    """
    if weight.dtype.kind not in "fc" or not weight.size:
        return weight
    top = float(np.abs(weight).max())
    if not math.isfinite(top) or top == 0 or _MODERATE ** -1 <= top <= _MODERATE:
        return weight
    return (weight / math.ldexp(1.0, math.frexp(top)[1] - 1)).astype(weight.dtype)


def _check_tolerance(tolerance: Any, dtype: np.dtype[Any]) -> float:
    if tolerance is None:
        return _tolerance(dtype)
    if isinstance(tolerance, bool) or not isinstance(tolerance, Real):
        raise ConvMatrixError(f"`tolerance` (={tolerance!r}) must be a number or None")
    if not 0 <= float(tolerance) < math.inf:  # also refuses nan
        raise ConvMatrixError(
            f"`tolerance` (={tolerance!r}) must be a finite relative error >= 0 (None: the "
            f"dtype's default)")
    return float(tolerance)


def _check_batch(batch: Any) -> int:
    if isinstance(batch, bool) or not hasattr(batch, "__index__") or operator.index(batch) < 0:
        raise ConvMatrixError(f"`batch` (={batch!r}) must be an integer >= 0 (0 skips the check)")
    return operator.index(batch)


def _crop(array: np.ndarray, spatial: Sequence[int]) -> np.ndarray:
    """The first ``spatial`` positions of every spatial axis (torch's gradient keeps those)."""
    return array[(slice(None), *(slice(0, n) for n in spatial))]


def verify(
    weight: ArrayLike,
    input_shape: ShapeLike,
    *,
    direction: Direction = "forward",
    stride: IntOrSeq = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: SupportsIndex = 1,
    padding_mode: PaddingMode = "zeros",
    seed: int = 0,
    batch: int = 3,
    tolerance: float | None = None,
    raise_on_failure: bool = False,
    transpose: Any = None,
) -> VerificationResult:
    """Prove a layer's matrix numerically against the independent dense reference.

    Builds the matrix (``C`` of a convolution, or ``Cᵀ`` of a transposed convolution when
    ``direction="adjoint"``) and checks, on seeded random data in the weight's dtype:

    1. the layer: ``M @ x`` against :func:`convmatrix.reference.conv` (or
       :func:`~convmatrix.reference.conv_transpose`);
    2. the adjoint layer: ``Mᵀ @ y`` against the adjoint reference
       (:func:`~convmatrix.reference.conv_adjoint`, or :func:`~convmatrix.reference.conv`
       cropped to the transposed layer's input);
    3. a batch: ``M @ X`` with ``batch`` samples as the columns of ``X``;
    4. the adjoint (dot-product) test ``⟨M u, v⟩ = ⟨u, Mᵀ v⟩``.

    The reference receives *your* arguments exactly as given, and normalises them with its own
    code; the output shape comes from the reference too. So a geometry bug in the spec code
    (a dropped ``output_padding``, swapped padding sides, a wrong "same" split) makes a check
    fail instead of being reproduced on both sides.

    Parameters
    ----------
    weight : array_like
        torch layout: ``(C_out, C_in // groups, *k)``, or ``(C_in, C_out // groups, *k)`` for
        a transposed convolution.
    input_shape : sequence of int
        One sample of the layer's input, channels first.
    direction : {"forward", "adjoint"}, optional
        ``"adjoint"``: verify the transposed convolution (torch ``conv_transposeNd``) instead.
    stride, padding, output_padding, dilation, groups, padding_mode
        As in :func:`convmatrix.conv_matrix` / :func:`convmatrix.conv_transpose_matrix`:
        ``output_padding`` only with ``"adjoint"``, ``padding_mode`` other than ``"zeros"``
        only without it.
    seed : int, optional
        Seed of the random data.
    batch : int, optional
        Samples in the batch check (0 skips it).
    tolerance : float, optional
        Relative tolerance (finite, >= 0); default exact (0) for integer weights, 1e-4 for
        float32 and complex64, 1e-10 otherwise.
    raise_on_failure : bool, optional
        Raise :class:`VerificationError` (showing both sides) if any check fails.
    transpose : bool, optional
        Deprecated: ``transpose=True`` is ``direction="adjoint"``.

    Returns
    -------
    VerificationResult
        Prints as a table; truthy when every check passed.

    Raises
    ------
    ConvMatrixError
        For invalid geometry, a ``padding_mode`` with ``"adjoint"`` (torch's transposed layers
        pad with zeros only), an ``output_padding`` without it, or a bad ``tolerance`` or
        ``batch``.

    Examples
    --------
    >>> import numpy as np
    >>> result = verify(np.ones((1, 1, 2, 2)), (1, 2, 2), direction="adjoint")
    >>> result.passed
    True
    >>> print(result)  # doctest: +ELLIPSIS
    transposed convolution 1×2×2 → 1×3×3, kernel 2×2, float64
    check ...
    ...
    => all checks passed
    """
    direction = direction_keyword(direction, transpose)
    w = _moderate(as_weight(weight))
    tol = _check_tolerance(tolerance, w.dtype)
    n_batch = _check_batch(batch)
    geometry: dict[str, Any] = {"stride": stride, "padding": padding, "dilation": dilation,
                                "groups": groups}
    if direction == "adjoint":
        if padding_mode != "zeros":
            raise ConvMatrixError(
                f"`padding_mode` (={padding_mode!r}) applies to convolutions only: a transposed "
                f"convolution pads with zeros (torch's ConvTransposeNd allows only 'zeros'); "
                f"verify the convolution whose adjoint you need instead")
        spec = conv_transpose_spec(w.shape, input_shape, output_padding=output_padding,
                                   **geometry)
    else:
        spec = conv_spec(w.shape, input_shape, padding_mode=padding_mode, **geometry)
        if any(per_axis(output_padding, spec.ndim, "output_padding", minimum=0)):
            raise ConvMatrixError(
                f"`output_padding` (={output_padding!r}) applies to transposed convolutions "
                f"only (direction='adjoint')")
    in_shape = tuple(operator.index(v) for v in input_shape)  # validated by the spec above
    matrix = spec_matrix(spec, w, direction=direction)
    if direction == "adjoint":
        out_pad: Any = output_padding
        forward: Callable[[np.ndarray], np.ndarray] = functools.partial(
            reference.conv_transpose, weight=w, output_padding=out_pad, **geometry)
        backward: Callable[[np.ndarray], np.ndarray] = _cropped(
            functools.partial(reference.conv, weight=w, **geometry), in_shape)
    else:
        forward = functools.partial(reference.conv, weight=w, padding_mode=padding_mode,
                                    **geometry)
        backward = functools.partial(reference.conv_adjoint, weight=w, input_shape=in_shape,
                                     padding_mode=padding_mode, **geometry)
    return _verify_matrix(matrix, w, in_shape, forward, backward, direction=direction,
                          seed=seed, batch=n_batch, tolerance=tol,
                          raise_on_failure=raise_on_failure)


def verify_spec(
    spec: ConvSpec,
    weight: ArrayLike,
    *,
    direction: Direction = "forward",
    seed: int = 0,
    batch: int = 3,
    tolerance: float | None = None,
    raise_on_failure: bool = False,
    transpose: Any = None,
) -> VerificationResult:
    """:func:`verify` for a layer already given as a normalised forward spec.

    The references receive the spec's normalised geometry, so this proves the matrix builder
    for that geometry but cannot catch a bug in the normalisation itself; prefer
    :func:`verify` with the original arguments. Works for every padding mode, with or
    in either ``direction`` (the adjoint of a reflect-padded convolution, for instance).
    ``transpose=`` is a deprecated spelling of ``direction=``.
    """
    direction = direction_keyword(direction, transpose)
    w = _moderate(as_weight(weight))
    tol = _check_tolerance(tolerance, w.dtype)
    n_batch = _check_batch(batch)
    geometry: dict[str, Any] = {"stride": spec.stride, "padding": spec.padding,
                                "dilation": spec.dilation, "groups": spec.groups}
    matrix = spec_matrix(spec, w, direction=direction)
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray], np.ndarray]
    if direction == "forward":
        forward = _cropped(functools.partial(reference.conv, weight=w,
                                             padding_mode=spec.padding_mode, **geometry),
                           spec.output_shape)
        backward = functools.partial(reference.conv_adjoint, weight=w,
                                     input_shape=spec.input_shape,
                                     padding_mode=spec.padding_mode, **geometry)
        in_shape = spec.input_shape
    else:
        if spec.padding_mode == "zeros":
            forward = functools.partial(reference.conv_transpose, weight=w,
                                        output_padding=spec.remainder, **geometry)
        else:
            forward = functools.partial(reference.conv_adjoint, weight=w,
                                        input_shape=spec.input_shape,
                                        padding_mode=spec.padding_mode, **geometry)
        backward = _cropped(functools.partial(reference.conv, weight=w,
                                              padding_mode=spec.padding_mode, **geometry),
                            spec.output_shape)
        in_shape = spec.output_shape
    return _verify_matrix(matrix, w, in_shape, forward, backward, direction=direction,
                          seed=seed, batch=n_batch, tolerance=tol,
                          raise_on_failure=raise_on_failure)


def _cropped(function: Callable[[np.ndarray], np.ndarray],
             shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """``function`` followed by keeping the first ``shape[1:]`` positions per spatial axis."""
    return lambda data: _crop(function(data), shape[1:])


def _verify_matrix(
    matrix: Any,
    w: np.ndarray,
    in_shape: tuple[int, ...],
    forward: Callable[[np.ndarray], np.ndarray],
    backward: Callable[[np.ndarray], np.ndarray],
    *,
    direction: Direction,
    seed: int,
    batch: int,
    tolerance: float,
    raise_on_failure: bool,
) -> VerificationResult:
    """Run the four checks of ``matrix`` against reference ``forward`` / ``backward`` maps."""
    adjoint = direction == "adjoint"
    kind, other = (("transposed convolution", "convolution") if adjoint
                   else ("convolution", "transposed convolution"))
    rng = np.random.default_rng(seed)
    x = _random(in_shape, w.dtype, rng)
    expected_x = forward(x)
    out_shape = expected_x.shape
    layer = (f"{kind} {shape_text(in_shape)} → {shape_text(out_shape)}, kernel "
             f"{shape_text(w.shape[2:])}, {w.dtype}")
    reference_shape = (math.prod(out_shape), math.prod(in_shape))
    if tuple(matrix.shape) != reference_shape:
        checks = [Check(f"matrix shape {tuple(matrix.shape)} vs reference {reference_shape}",
                        math.inf, math.inf, tolerance, np.array(reference_shape),
                        np.array(matrix.shape))]
    else:
        y = _random(out_shape, w.dtype, rng)
        checks = [
            _compare(f"{'Cᵀ' if adjoint else 'C'} @ x vs reference {kind}",
                     expected_x.ravel(), matrix @ x.ravel(), tolerance),
            _compare(f"{'C' if adjoint else 'Cᵀ'} @ y vs reference {other}",
                     backward(y).ravel(), matrix.T @ y.ravel(), tolerance),
        ]
        if batch:
            xs = np.stack([_random(in_shape, w.dtype, rng) for _ in range(batch)])
            expected = np.stack([forward(sample).ravel() for sample in xs], axis=1)
            checks.append(_compare(f"batch of {batch}: M @ X (samples as columns)", expected,
                                   matrix @ xs.reshape(batch, -1).T, tolerance))
        checks.append(dot_test(matrix, seed=seed, tolerance=max(tolerance, 1e-10)
                               if w.dtype.kind in "biu" else tolerance))
    result = VerificationResult(layer, tuple(checks))
    if raise_on_failure:
        result.raise_if_failed()
    return result
