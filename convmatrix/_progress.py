"""Progress of long work: one ``progress=`` argument for every function that can take seconds.

``progress`` accepts:

* ``None`` (default): a progress bar when the session is interactive — stderr is a terminal,
  or the code runs in a Jupyter kernel — and ``tqdm`` is installed (``pip install
  convmatrix[progress]``); nothing otherwise. The bar appears only after about 2 s
  (``tqdm``'s ``delay``), so quick calls stay silent.
* ``True``: a bar even when not interactive (``tqdm`` if installed, else a plain line on
  stderr); ``False``: nothing.
* a callable ``progress(done, total)``: called with ``done`` increasing from 0 to ``total``
  (``total`` is None when the amount of work is not known in advance, e.g. iterations of
  ARPACK); nothing is printed.

Work interrupted by Ctrl-C (``KeyboardInterrupt``) closes its bar; the functions using this
module update no cache or file before their work is complete.

Examples
--------
>>> seen = []
>>> with Progress(3, lambda done, total: seen.append((done, total)), "rows") as bar:
...     for _ in range(3):
...         bar.advance()
>>> seen
[(0, 3), (1, 3), (2, 3), (3, 3)]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from convmatrix._errors import ConvMatrixError

__all__ = ["DELAY_SECONDS", "Progress", "ProgressArg", "check_progress", "interactive"]

ProgressArg = bool | Callable[[int, int | None], Any] | None
"""What a ``progress=`` argument accepts: None (auto), True, False, or ``callback(done, total)``."""

DELAY_SECONDS = 2.0
"""A bar appears only once the work has run this long."""


def interactive() -> bool:
    """Whether a person is watching: stderr is a terminal, or this is a Jupyter kernel."""
    if os.environ.get("CONVMATRIX_PROGRESS", "").lower() in ("0", "off", "false", "no"):
        return False
    shell = sys.modules.get("IPython")
    if shell is not None:
        get = getattr(shell, "get_ipython", None)
        if get is not None and type(get()).__name__ == "ZMQInteractiveShell":
            return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def check_progress(progress: Any) -> ProgressArg:
    """Validate a ``progress=`` argument."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return progress  # type: ignore[no-any-return]
    raise ConvMatrixError(f"`progress` (={progress!r}) must be None, True, False or a "
                          f"callable progress(done, total)")


class Progress:
    """Progress of ``total`` units of work (None: unknown), reported as ``progress`` asks.

    Use as a context manager; call :meth:`advance` after each unit (or several).
    """

    def __init__(self, total: int | None, progress: ProgressArg = None, desc: str = "") -> None:
        self.total = total
        self.done = 0
        self.desc = desc
        self._callback: Callable[[int, int | None], Any] | None = None
        self._bar: Any = None
        self._plain = False
        self._start = time.monotonic()
        self._last = 0.0
        progress = check_progress(progress)
        if callable(progress) and not isinstance(progress, bool):
            self._callback = progress
            progress(0, total)
            return
        if progress is False or (progress is None and not interactive()):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._plain = progress is True
            return
        self._bar = tqdm(total=total, desc=desc or None, unit="", leave=False,
                         delay=0.0 if progress is True else DELAY_SECONDS, file=sys.stderr)

    def advance(self, amount: int = 1) -> None:
        """Record ``amount`` more units done."""
        self.done += amount
        if self._callback is not None:
            self._callback(self.done, self.total)
        elif self._bar is not None:
            self._bar.update(amount)
        elif self._plain:
            now = time.monotonic()
            if now - self._last >= 0.5 or self.done == self.total:
                self._last = now
                of = "" if self.total is None else f"/{self.total}"
                sys.stderr.write(f"\r{self.desc or 'working'}: {self.done}{of}")
                sys.stderr.flush()

    def close(self) -> None:
        """End the bar (also on an exception such as Ctrl-C)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._plain:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._plain = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
