"""The doctest checker configured in conftest.py: float round-off passes, nothing else does.

scipy-doctest's defaults (rtol 1e-2, IGNORE_EXCEPTION_DETAIL, unchecked outputs, broadcasting)
would let wrong numbers through; these cases pin the tight configuration.
"""

import doctest

import pytest

scipy_doctest = pytest.importorskip("scipy_doctest.conftest")


@pytest.fixture(scope="module")
def check():
    config = scipy_doctest.dt_config
    checker = config.CheckerKlass(config)

    def run(want: str, got: str) -> bool:
        return bool(checker.check_output(want + "\n", got + "\n", config.optionflags))

    return run


@pytest.mark.parametrize(("want", "got"), [
    ("0.3", "0.30000000000000004"),                                  # round-off
    ("array([0.3, 0.4])", "array([0.30000000000000004, 0.4])"),
    ("(8.2909, 9.0)", "(8.2909, 9.0)"),
    ("array([[1, 2],\n       [3, 4]])", "array([[1, 2], [3, 4]])"),   # whitespace
])
def test_round_off_and_whitespace_pass(check, want, got):
    assert check(want, got)


@pytest.mark.parametrize(("want", "got"), [
    ("2.0", "2.000001"),                        # a wrong number (NUMBER would have passed it)
    ("0.333", "0.3333333333333333"),            # fewer digits than printed: round() in the example
    ("array([3., 7.])", "array([3., 6.])"),     # NUMBER: '7.' matched 6 (tolerance 1)
    ("array([1., 2.])", "array([1., 2.], dtype=float32)"),
    ("1.0", "array([1., 1.])"),                 # np.allclose would broadcast
    ("1", "1.0"),                               # int vs float
    ("True", "1"),
    ("3", "<object object at 0x7f0000000000>"),  # an address accepted anything
    ("# y", "# x"),                             # a leading # accepted anything
    ("B(x=1)", "A(x=1)"),                       # named tuples compared by values only
    ("abc...", "abcdef"),                       # no ELLIPSIS unless an example asks for it
    ("ValueError: got 3", "ValueError: got 2"),  # exception details are checked
])
def test_anything_else_fails(check, want, got):
    assert not check(want, got)


def test_exception_details_and_ellipsis_are_not_default_flags():
    flags = scipy_doctest.dt_config.optionflags
    assert not flags & doctest.IGNORE_EXCEPTION_DETAIL
    assert not flags & doctest.ELLIPSIS
    assert scipy_doctest.dt_config.rtol <= 1e-12 and scipy_doctest.dt_config.atol <= 1e-12
