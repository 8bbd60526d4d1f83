"""The one exception type raised for invalid convolution geometry or arguments."""

__all__ = ["ConvMatrixError"]


class ConvMatrixError(ValueError):
    """Invalid convolution geometry, argument or request.

    Derives from :class:`ValueError`, so ``except ValueError`` catches it. Messages name the
    argument in backticks, its value, and the rule it breaks.
    """
