"""The layer object: a linear (affine) map with fixed shapes, ``y = M x + b``, and its adjoint."""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, get_args

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix._hooks import presenter_factories
from convmatrix.builder.budget import check_budget, check_max_bytes
from convmatrix.builder.indexing import index_dtype
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.typing import Layout

if TYPE_CHECKING:
    from convmatrix.analysis.checkerboard import Checkerboard, Weights
    from convmatrix.analysis.inverse import InverseAnalysis
    from convmatrix.analysis.linop import LayerOperator
    from convmatrix.geometry.view import AxisSteps, ConvView
    from convmatrix.verification import VerificationResult

__all__ = ["Adjoint", "Layer", "Presenter", "ShapedLayer", "check_max_bytes", "get_presenter",
           "set_presenter", "shape_text"]

_FORMATS: tuple[str, ...] = get_args(SparseFormat)


class Presenter(Protocol):
    """What :meth:`Layer.explain` and :meth:`Layer.report` delegate to (see :func:`set_presenter`).

    Presentation lives above the layers (:mod:`convmatrix.reports`); layers reach it only
    through this hook, which the top-level package wires up lazily.
    """

    def explain(self, layer: Layer, x: Any = None) -> Any:
        """An explanation of ``layer`` (an object with ``to_markdown()``)."""

    def report(self, layer: Layer, x: Any = None) -> str:
        """A Markdown report of ``layer``."""


#: the registry :func:`set_presenter` fills; the same list as ``convmatrix._hooks``, so the top
#: package can register its factory without importing the layers
_presenter_factory: list[Callable[[], Any]] = presenter_factories
_presenter: list[Presenter] = []


def set_presenter(factory: Callable[[], Presenter]) -> None:
    """Register how layers find their presentation: ``factory()`` returns a :class:`Presenter`.

    It is called once, on the first :meth:`Layer.explain` or :meth:`Layer.report` that needs
    it; ``import convmatrix`` registers one that imports :mod:`convmatrix.reports` then.
    """
    _presenter_factory[:] = [factory]
    _presenter.clear()


def get_presenter() -> Presenter:
    """The registered :class:`Presenter` (made by the factory on first use)."""
    if not _presenter:
        if not _presenter_factory:  # pragma: no cover - importing convmatrix registers one
            raise ConvMatrixError("no presenter registered (convmatrix registers "
                                  "convmatrix.reports when it is imported)")
        _presenter.append(_presenter_factory[0]())
    return _presenter[0]


class Layer(ABC):
    """A layer that is an affine map of one sample: ``layer(x) = M @ x.ravel() + b``.

    Every layer kind answers the same questions: its shapes, its exact sparse matrix ``M``
    (:meth:`matrix`), its offset ``b`` (:meth:`offset`, the bias), and its adjoint layer
    (:attr:`T`, whose matrix is ``M.T``). Samples are one array of shape :attr:`input_shape`
    (no batch axis), flattened in C order.

    Subclasses implement :attr:`input_shape`, :attr:`output_shape` and :meth:`_build_matrix`;
    they may override :meth:`offset`, :meth:`_adjoint` (the adjoint as a layer of a named
    kind; default :class:`Adjoint`) and :meth:`_describe` (the text inside the one-line repr).

    The analyses (:mod:`convmatrix.analysis`) never test a layer's class: they call the
    *hooks* of the :class:`~convmatrix.geometry.view.AffineMap` protocol, which every kind
    answers about itself — :meth:`conv_view`, :meth:`apply_forward` / :meth:`apply_adjoint`,
    :meth:`chain`, :attr:`layout`, :meth:`path_matrix`, :meth:`own_interior` and
    :meth:`axis_steps`. The defaults here derive them from :meth:`matrix` and
    :meth:`conv_view`; a new kind overrides those it knows better.
    """

    _transposed: Layer | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Keep kinds written for 0.1 working: their ``_apply`` / ``_apply_adjoint`` (deprecated).

        The batch hooks are public now (:meth:`apply_forward`, :meth:`apply_adjoint`); a kind
        that still defines only the old private names gets them as the new hooks, with a
        DeprecationWarning.
        """
        super().__init_subclass__(**kwargs)
        for old, new in (("_apply", "apply_forward"), ("_apply_adjoint", "apply_adjoint")):
            if old in cls.__dict__ and new not in cls.__dict__:
                warnings.warn(
                    f"{cls.__name__}.{old} is deprecated and will be removed in convmatrix 0.3; "
                    f"implement the public hook {new}(batch) instead", DeprecationWarning,
                    stacklevel=2)
                setattr(cls, new, cls.__dict__[old])

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""

    @property
    @abstractmethod
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output sample."""

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(∏output_shape, ∏input_shape)``: the shape of :meth:`matrix`."""
        return math.prod(self.output_shape), math.prod(self.input_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of :meth:`matrix` (float64 unless a subclass holds typed weights)."""
        return np.dtype(np.float64)

    def matrix(self, format: SparseFormat = "csr", *,
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """The exact sparse matrix ``M`` of the layer's linear part.

        Parameters
        ----------
        format : {"csr", "csc", "coo"}, optional
            Layout of the result.
        max_bytes : int or None, optional
            Refuse (with :class:`~convmatrix.ConvMatrixError`) a matrix estimated above this
            many bytes, before building it; None disables the guard.

        Returns
        -------
        scipy.sparse array, shape :attr:`matrix_shape`
            ``M @ x.ravel() + self.offset() == layer(x).ravel()``.
        """
        if format not in _FORMATS:
            raise ConvMatrixError(
                f"`format` (={format!r}) must be one of {', '.join(map(repr, _FORMATS))}")
        budget = check_max_bytes(max_bytes)
        if budget is not None:
            self._check_budget(format, budget)
        return self._build_matrix(format, budget)

    def matrix_in(self, dtype: Any, format: SparseFormat = "csr", *,
                  max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """:meth:`matrix` with its entries formed in ``dtype`` (a product's widened type).

        A stack widens integer products by the integer rule; a member whose own dtype cannot
        hold an entry of its matrix (an int8 circular convolution whose taps merged on a
        small input sum past 127) is built in the wider type instead of refused. Default:
        :meth:`matrix` cast to ``dtype`` (exact for every kind whose entries are its
        weights); a kind that sums weights into one entry overrides it.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> conv = cm.Conv(np.full((1, 1, 3), 100, np.int8), (1, 2), padding=1,
        ...                padding_mode="circular")
        >>> conv.matrix_in(np.int16).toarray()        # int8 cannot hold 200
        array([[100, 200],
               [200, 100]], dtype=int16)
        """
        return self.matrix(format, max_bytes=max_bytes).astype(dtype, copy=False)

    def _check_budget(self, format: SparseFormat, max_bytes: int) -> None:
        """Refuse :meth:`matrix` before building when :meth:`_matrix_nbytes` is over budget.

        A kind whose builder refuses on a better estimate first (a stack: its plan's peak)
        overrides this with a no-op.
        """
        check_budget(f"the matrix {self.matrix_shape} of {self!r}",
                     self._matrix_nbytes(format), max_bytes)

    def _matrix_nbytes(self, format: SparseFormat) -> int:
        """Bytes of :meth:`matrix` estimated without building it (0: the kind checks itself).

        Kinds with an ``_nnz_estimate()`` hook (exact or an upper bound, from the shapes
        alone) or a convolution behind them (:meth:`conv_view`) are counted here: data, column
        indices and row pointers (COO: row indices too), so every such kind is refused before
        it allocates, whatever its builder does.
        """
        own = getattr(self, "_nnz_estimate", None)
        view = self.conv_view() if own is None else None
        if own is not None:
            nnz = math.ceil(own())
        elif view is not None:
            nnz = int(view.spec.nnz_upper_bound())
        else:
            return 0
        rows, cols = self.matrix_shape
        index = index_dtype(nnz, (rows, cols)).itemsize
        pointers = 0 if format == "coo" else (cols if format == "csc" else rows) + 1
        indices = 2 * nnz if format == "coo" else nnz
        return nnz * self.dtype.itemsize + (indices + pointers) * index

    @abstractmethod
    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        """Build :meth:`matrix` (arguments already validated)."""

    def offset(self) -> np.ndarray:
        """The flat offset ``b`` (the bias) added after ``M @ x``; zeros when there is none.

        Returns
        -------
        ndarray, shape ``(∏output_shape,)``
        """
        return np.zeros(math.prod(self.output_shape), dtype=self.dtype)

    @property
    def T(self) -> Layer:
        """The adjoint layer: its matrix is ``self.matrix().T``; ``layer.T.T is layer``.

        The adjoint of the *linear* part: its offset is zero.
        """
        if self._transposed is None:
            adjoint = self._adjoint()
            adjoint._transposed = self
            self._transposed = adjoint
        return self._transposed

    def _adjoint(self) -> Layer:
        return Adjoint(self)

    def conv_view(self) -> ConvView | None:
        """The convolution behind this layer, or None when it is no (re-indexed) convolution.

        The hook analyses use instead of testing a layer's class: a convolution answers with
        its forward spec, weight and direction; its adjoint with the other direction; a
        channels-last (Keras) convolution with its channels-first core and the layout.
        """
        return None

    # -- hooks the analyses use (the AffineMap protocol) -------------------------------------

    @property
    def layout(self) -> Layout:
        """How the layer flattens its samples: ``"channels_first"`` unless its convolution says.

        Keras' channels-last kinds answer ``"channels_last"`` (the channel axis is the last
        axis of :attr:`input_shape` and :attr:`output_shape`).
        """
        view = self.conv_view()
        return "channels_first" if view is None else view.layout

    def chain(self) -> tuple[Layer, ...]:
        """The factors of the layer, first applied first: ``(self,)`` unless it is a stack."""
        return (self,)

    def path_matrix(self) -> sp.csr_array:
        """The matrix with every learnable weight 1 (int64 CSR): weight paths per entry.

        Default: a convolution (:meth:`conv_view`) with all-ones weights, in the layer's
        layout; any other kind its *structural* paths, one per non-zero matrix entry. See
        :mod:`convmatrix.analysis.paths`.
        """
        from convmatrix.analysis.paths import conv_path_matrix, structural_paths

        view = self.conv_view()
        if view is not None:
            return conv_path_matrix(view)
        return structural_paths(self.matrix())

    def own_interior(self) -> np.ndarray:
        """Flat bool per output pixel: no border effect *of this layer itself* reaches it.

        Default: a convolution's own rule (no tap in the padding; for a transposed one, every
        tap of the infinite lattice lands from an input pixel); any other kind the rows with as
        many paths as the fullest row. See :func:`convmatrix.analysis.paths.interior_mask`.
        """
        from convmatrix.analysis.paths import conv_interior, fullest_rows

        view = self.conv_view()
        if view is not None:
            return conv_interior(view)
        return fullest_rows(self.path_matrix())

    def axis_steps(self) -> AxisSteps | None:
        """Per spatial axis the lattice steps of the checkerboard law, and the channel factor.

        None when the layer is no per-axis step (pixel shuffle, interpolation, pooling, ...).
        Default: a convolution's steps (:meth:`conv_view`; a strided forward convolution
        decimates, so its axes have none). See
        :func:`convmatrix.analysis.checkerboard.checkerboard`.
        """
        view = self.conv_view()
        if view is None:
            return None
        from convmatrix.analysis.checkerboard import conv_axis_steps

        return conv_axis_steps(view)

    def operator(self, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> LayerOperator:
        """The linear part as a matrix-free ``scipy.sparse.linalg.LinearOperator``.

        See :class:`convmatrix.analysis.linop.LayerOperator`: ``matvec``/``matmat`` apply the layer,
        ``rmatvec``/``rmatmat`` its exact adjoint, and :meth:`matrix` is never built.
        ``max_bytes`` guards what a product holds at once (its result and one batch of
        columns in flight); None disables the guard.
        """
        from convmatrix.analysis.linop import LayerOperator

        return LayerOperator(self, max_bytes=check_max_bytes(max_bytes))

    def matrix_blocks(self, rows_per_block: int | None = None, *,
                      max_bytes: int | None = DEFAULT_MAX_BYTES) -> Iterator[sp.csr_array]:
        """:meth:`matrix` as CSR row blocks (:func:`convmatrix.analysis.blocks.matrix_blocks`).

        ``max_bytes`` bounds what is held at once (one block; the matrix for kinds built whole).
        """
        from convmatrix.analysis.blocks import matrix_blocks

        return matrix_blocks(self, rows_per_block, max_bytes=max_bytes)

    def to_dask(self, row_chunks: int | None = None, *,
                max_bytes: int | None = DEFAULT_MAX_BYTES) -> Any:
        """:meth:`matrix` as a lazy dask array (see :mod:`convmatrix.analysis.distributed`)."""
        from convmatrix.analysis.distributed import to_dask

        return to_dask(self, row_chunks, max_bytes=max_bytes)

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The linear part on a batch: ``(B, *input_shape)`` → ``(B, *output_shape)``.

        The default multiplies by :meth:`matrix`; layer kinds with a matrix-free computation
        override it (and :meth:`apply_adjoint`), which :meth:`operator` then uses.
        """
        flat = (self.matrix() @ batch.reshape(batch.shape[0], -1).T).T
        return flat.reshape(batch.shape[0], *self.output_shape)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The adjoint on a batch: ``(B, *output_shape)`` → ``(B, *input_shape)``."""
        flat = (self.matrix("csc").T @ batch.reshape(batch.shape[0], -1).T).T
        return flat.reshape(batch.shape[0], *self.input_shape)

    def abs_row_sum(self) -> int:
        """An upper bound on ``‖M‖∞``, the largest absolute row sum of :meth:`matrix`.

        Exact Python int for integer and bool weights (the bound the integer rule uses, see
        :data:`convmatrix.builder.dtypes.INTEGER_RULE`). Default: a convolution's closed form
        (:meth:`conv_view`), otherwise the row sums of the built matrix (rounded up).
        """
        from convmatrix.builder.dtypes import conv_abs_row_sum, max_abs

        view = self.conv_view()
        if view is not None:
            return conv_abs_row_sum(view.spec, view.weight, view.direction)
        matrix = sp.csr_array(self.matrix())
        if matrix.nnz == 0:
            return 0
        if matrix.dtype.kind in "biu":
            data = np.abs(matrix.data.astype(object))
            return max(int(sum(data[a:b])) for a, b in zip(matrix.indptr[:-1], matrix.indptr[1:],
                                                           strict=True))
        return max_abs(abs(matrix.astype(np.float64)).sum(axis=1))

    def _magnitude(self, x_max: int) -> int:
        """A bound on ``|M x + b|`` (and on every intermediate of the apply) for ``|x| ≤ x_max``."""
        from convmatrix.builder.dtypes import max_abs

        # a kind without its own offset has none: no zeros of the output's size are made
        offset = 0 if type(self).offset is Layer.offset else max_abs(self.offset())
        return max(self.abs_row_sum(), 1) * x_max + offset

    def _apply_nbytes(self, batch: int, itemsize: int) -> int:
        """Estimated bytes :meth:`__call__` holds at once for ``batch`` samples.

        Per factor of :meth:`chain`: its input, its output and (for a convolution) the padded
        buffer the matrix-free apply works in, all in ``itemsize``; the largest factor counts.
        """
        from convmatrix.builder.budget import apply_nbytes

        return apply_nbytes(self.chain(), batch, itemsize)

    def __call__(self, x: Any, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> np.ndarray:
        """Apply the layer, ``M @ x + b``, to one sample or a batch ``(B, *input_shape)``.

        Integer and bool results are exact or refused (the rule:
        :data:`convmatrix.builder.dtypes.INTEGER_RULE`): the computation widens to the smallest
        integer type that holds ``(‖M‖∞·max|x| + max|b|)`` (iterated over a stack's layers).
        A fractional offset on integer data (``Pad(value=0.5)``) gives a float64 result: the
        value of the affine map, where torch's ``F.pad`` on an integer tensor truncates.

        Parameters
        ----------
        x : array_like
            One sample, shape :attr:`input_shape`, or a batch.
        max_bytes : int or None, optional
            Refuse (before allocating) when the output and the working buffers are estimated
            above this many bytes; None disables the guard.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))(np.ones((1, 3, 3), dtype=int))
        array([[[4, 4],
                [4, 4]]])
        >>> cm.Conv(np.full((1, 1, 1), 100, np.int8), (1, 1))(np.full((1, 1), 100, np.int8))
        array([[10000]], dtype=int16)
        """
        from convmatrix.builder.budget import check_budget
        from convmatrix.builder.dtypes import integer_dtype, max_abs

        budget = check_max_bytes(max_bytes)
        array = np.asarray(x)
        single = array.shape == self.input_shape
        if not single and not (array.ndim == len(self.input_shape) + 1
                               and array.shape[1:] == self.input_shape):
            raise ConvMatrixError(
                f"`x` has shape {array.shape}; the layer takes {self.input_shape} (one sample) "
                f"or (batch, {', '.join(map(str, self.input_shape))})")
        batch = array[None] if single else array
        dtype = np.result_type(self.dtype, batch.dtype)
        check_budget(f"applying {self!r} to {batch.shape[0]} sample(s)",
                     self._apply_nbytes(batch.shape[0], max(dtype.itemsize, 8)), budget)
        offset = self.offset().reshape(self.output_shape)
        if dtype.kind in "biu" and not np.array_equal(offset, np.round(offset)):
            # a fractional offset (``Pad(value=0.5)``) on integer data: the affine map's value
            # is not an integer, so compute it in floating point instead of truncating
            dtype = np.result_type(offset.dtype, np.float64)
        if dtype.kind in "biu":
            dtype = integer_dtype(dtype, self._magnitude(max_abs(batch)),
                                  f"{self!r} applied to {batch.dtype} data")
        if dtype.kind in "biu":
            batch = batch.astype(dtype, copy=False)
            out = (self.apply_forward(batch).astype(dtype, copy=False)
                   + offset.astype(dtype, copy=False))
        else:
            out = self.apply_forward(batch) + offset
        return out[0] if single else out

    def verify(self, *, seed: int = 0) -> VerificationResult:
        """Check :meth:`matrix` against an independent computation and the adjoint test.

        The generic check compares ``M`` column by column with the layer applied by
        :meth:`_reference` (subclasses with an independent dense reference override this).
        """
        raise ConvMatrixError(f"{type(self).__name__} has no independent reference to verify "
                              f"against")

    def transpose_vs_inverse(self, x: Any = None, *, seed: int | None = None
                             ) -> InverseAnalysis:
        """Why :attr:`T` is not the inverse: ``MᵀM``, rank, null space, least-squares inverse.

        See :func:`convmatrix.analysis.inverse.transpose_vs_inverse`.
        """
        from convmatrix.analysis.inverse import transpose_vs_inverse

        return transpose_vs_inverse(self, x, seed=seed)

    def overlap_counts(self) -> np.ndarray:
        """Weight paths landing on each output pixel with every learnable weight 1.

        An int64 array of shape :attr:`output_shape`; see :mod:`convmatrix.analysis.paths` for what
        counts as a path (merged padding taps, fixed-weight layers, stacks).
        """
        from convmatrix.analysis.paths import path_counts

        return path_counts(self)

    def checkerboard(self, weights: Weights = "ones") -> Checkerboard:
        """The checkerboard verdict: period, interior values, imbalance, per-axis law.

        ``weights="ones"`` judges :meth:`overlap_counts`; ``"actual"`` the layer's own response
        to a constant input. See :func:`convmatrix.analysis.checkerboard.checkerboard`.
        """
        from convmatrix.analysis.checkerboard import checkerboard

        return checkerboard(self, weights)

    def _describe(self) -> str:
        return f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def explain(self, x: Any = None) -> Any:
        """What the layer computes, read from its matrix (convolutions: derived symbolically).

        Shapes, what sampled outputs read (inputs with their coefficients), the per-axis law
        and the checkerboard verdict; a stack explains each factor and the product.

        Parameters
        ----------
        x : array_like, optional
            An input sample; the sampled outputs then also show their values.

        Returns
        -------
        object with ``to_markdown()`` and ``_repr_markdown_()``
        """
        return get_presenter().explain(self, x)

    def report(self, x: Any = None) -> str:
        """A Markdown report of the layer (text only; the CLI adds figures)."""
        return get_presenter().report(self, x)

    def summary_markdown(self) -> str:
        """A Markdown table of what the layer is: its shapes, its matrix and its dtype.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> print(cm.Conv(np.ones((1, 1, 2)), (1, 3)).summary_markdown())
        `Conv(1→1, 1×3 → 1×2, kernel 2)`
        <BLANKLINE>
        | input | output | matrix | dtype |
        |---|---|---|---|
        | 1×3 | 1×2 | 2×3 | float64 |
        """
        rows, columns = self.matrix_shape
        return "\n".join([
            f"`{self!r}`", "", "| input | output | matrix | dtype |", "|---|---|---|---|",
            f"| {shape_text(self.input_shape)} | {shape_text(self.output_shape)} | "
            f"{rows}×{columns} | {self.dtype} |"])

    def _repr_markdown_(self) -> str:
        """Jupyter's rendering: the summary and the whole explanation (:meth:`explain`).

        A layer over the symbolic size guard (or the memory guard) says why it is not
        explained.
        """
        try:
            explanation = self.explain()
        except ConvMatrixError as error:
            return f"{self.summary_markdown()}\n\n*No symbolic explanation: {error}*"
        return f"{self.summary_markdown()}\n\n{explanation.to_markdown()}"

    def _repr_latex_(self) -> str | None:
        """The explanation as LaTeX, for explanations that have one (None otherwise)."""
        try:
            latex = getattr(self.explain(), "_repr_latex_", None)
        except ConvMatrixError:
            return None
        return None if latex is None else str(latex())


class ShapedLayer(Layer):
    """A layer that stores its shapes: subclasses set ``_input_shape`` and ``_output_shape``."""

    _input_shape: tuple[int, ...]
    _output_shape: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output sample."""
        return self._output_shape


class Adjoint(Layer):
    """The adjoint of a layer whose adjoint is no named layer kind (e.g. reflect padding).

    Its matrix is ``layer.matrix().T``, built from the other orientation of the same pattern
    (the CSR of the adjoint is the CSC of the layer), its offset zero.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 3)), (1, 4), padding=1, padding_mode="reflect")
    >>> conv.T
    Adjoint(Conv(1→1, 1×4 → 1×4, kernel 3, padding 1, reflect))
    >>> conv.T.T is conv
    True
    >>> (conv.T.matrix() != conv.matrix().T).nnz
    0
    """

    def __init__(self, layer: Layer) -> None:
        self.layer = layer

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The layer's output shape."""
        return self.layer.output_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The layer's input shape."""
        return self.layer.input_shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The layer's dtype."""
        return self.layer.dtype

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        other: SparseFormat = {"csr": "csc", "csc": "csr", "coo": "coo"}[format]  # type: ignore[assignment]
        return self.layer.matrix(other, max_bytes=max_bytes).T

    def _adjoint(self) -> Layer:
        return self.layer

    def matrix_in(self, dtype: Any, format: SparseFormat = "csr", *,
                  max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """The layer's :meth:`Layer.matrix_in`, transposed."""
        other: SparseFormat = {"csr": "csc", "csc": "csr", "coo": "coo"}[format]  # type: ignore[assignment]
        return self.layer.matrix_in(dtype, other, max_bytes=max_bytes).T

    def _matrix_nbytes(self, format: SparseFormat) -> int:
        other: SparseFormat = {"csr": "csc", "csc": "csr", "coo": "coo"}[format]  # type: ignore[assignment]
        return self.layer._matrix_nbytes(other)

    def conv_view(self) -> ConvView | None:
        """The layer's convolution in the other direction (None if it has none)."""
        view = self.layer.conv_view()
        return None if view is None else view.adjoint()

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The layer's adjoint application."""
        return self.layer.apply_adjoint(batch)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The layer's application."""
        return self.layer.apply_forward(batch)

    @property
    def layout(self) -> Layout:
        """The layer's layout."""
        return self.layer.layout

    def path_matrix(self) -> sp.csr_array:
        """The transpose of the layer's path matrix."""
        return sp.csr_array(self.layer.path_matrix().T)

    def own_interior(self) -> np.ndarray:
        """The structural rule: rows with as many paths as the fullest row."""
        from convmatrix.analysis.paths import fullest_rows

        return fullest_rows(self.path_matrix())

    def axis_steps(self) -> AxisSteps | None:
        """The adjoint of a convolution (e.g. reflect padding): the transposed steps.

        None for the adjoint of any other kind (including of a transposed convolution).
        """
        view = self.conv_view()
        if view is None or view.direction != "adjoint":
            return None
        from convmatrix.analysis.checkerboard import conv_axis_steps

        return conv_axis_steps(view, label="adjoint convolution")

    def verify(self, *, seed: int = 0) -> VerificationResult:
        """The layer's verification (it checks both the layer and its adjoint)."""
        return self.layer.verify(seed=seed)

    def __repr__(self) -> str:
        return f"Adjoint({self.layer!r})"
