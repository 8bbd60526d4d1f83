"""The ``convmatrix`` parser as the CLI reference shows it (docs/reference/cli.rst).

sphinx-argparse reads every help text, description and epilog as reStructuredText, but the
parser's texts are plain terminal text (``(C_out, C_in/groups, *k)``, indented example lines).
:func:`parser` is :func:`convmatrix.cli.build_parser` with those texts made literal: inline
markup escaped, indented blocks turned into literal blocks. The words are the parser's own.
"""

from __future__ import annotations

import argparse
import re

from convmatrix.cli import build_parser

__all__ = ["parser"]


def _literal(text: str) -> str:
    """Plain text as reStructuredText that renders it as written."""
    head, sep, rest = text.partition("\n")
    if sep and rest.startswith(" "):  # a heading line over indented lines: a literal block
        return f"{_escape(head.rstrip(':'))}::\n\n" + "\n".join(
            f"  {line}" for line in rest.splitlines())
    return _escape(text)


def _escape(text: str) -> str:
    return re.sub(r"([\\*`|_\[\]<>])", r"\\\1", text)


def _make_literal(parser: argparse.ArgumentParser, seen: set[int]) -> None:
    for attribute in ("description", "epilog"):
        text = getattr(parser, attribute)
        if text:
            setattr(parser, attribute, _literal(text))
    for action in parser._actions:
        if id(action) in seen:  # subcommands share their parents' actions
            continue
        seen.add(id(action))
        if action.help and action.help != argparse.SUPPRESS:
            action.help = _escape(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = _escape(choice.help or "")
            for sub in dict.fromkeys(action.choices.values()):
                _make_literal(sub, seen)


def parser() -> argparse.ArgumentParser:
    """:func:`convmatrix.cli.build_parser` with its texts escaped for reStructuredText."""
    built = build_parser()
    _make_literal(built, set())
    return built
