"""The formula symbols ``n, k, s, p, d, a, j, t, p_b, p_a``, plain (no SymPy assumptions).

Every formula of :mod:`convmatrix.symbolic` (:func:`~convmatrix.symbolic.conv_output_size`,
:func:`~convmatrix.symbolic.overlap_formula`, :data:`~convmatrix.symbolic.RELATIONSHIPS`, ...)
is written in these symbols. They carry **no assumptions**: SymPy tells symbols apart by name
*and* assumptions, so a library symbol declared ``integer=True`` would silently ignore a user's
``sympy.Symbol("k")`` in ``.subs({k: 3})``. Plain symbols make that impossible: import these, or
make your own with ``sympy.symbols("n k s p d")``, and both substitute.

===========  ==========================================================================
symbol       meaning (one spatial axis)
===========  ==========================================================================
``n``        input size (for a transposed layer: its input size ``n'``)
``k``        kernel size (taps)
``s``        stride
``p``        padding on each side (symmetric); ``p_b`` / ``p_a`` before / after
``d``        dilation (the dilated kernel spans ``d·(k − 1) + 1``)
``a``        output padding of a transposed layer
``j``        output pixel of a transposed layer (input pixel of a convolution)
``t``        kernel tap, ``0 ≤ t < k``
===========  ==========================================================================

Examples
--------
>>> import sympy
>>> from convmatrix.symbolic import conv_output_size, k
>>> conv_output_size().subs({k: 3}) == conv_output_size().subs({sympy.Symbol("k"): 3})
True
"""

import sympy

__all__ = ["a", "d", "j", "k", "n", "p", "p_after", "p_before", "s", "t"]

n, k, s, p, d, a, j, t = sympy.symbols("n k s p d a j t")
p_before, p_after = sympy.symbols("p_b p_a")
