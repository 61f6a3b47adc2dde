"""The shape of a wording pattern: the plain text it starts with, and its leading branches.

Both the rulebook (which refuses a pattern that cannot start a word) and the matcher (which
files every pattern under its first letters) need to see through a pattern this far, and no
further: patterns are regular expressions, but most of them start with plain text.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Final

_REGEX_SYNTAX: Final = frozenset(".^$*+?{}[]\\|()")
#: A leading group is written out into its branches only while the plain text before it is
#: shorter than this: past it, the prefix alone already tells patterns apart.
SHORTEST_USEFUL_PREFIX: Final = 4


def literal_prefix(pattern: str) -> tuple[str, str]:
    """Split ``pattern`` into the plain text it starts with and the regular expression after."""
    prefix: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            prefix.append(pattern[i + 1])
            i += 2
            continue
        if char in _REGEX_SYNTAX:
            if char in "*+?{" and prefix:
                # A quantifier binds to the character before it, which is then not plain text.
                return "".join(prefix[:-1]), re.escape(prefix[-1]) + pattern[i:]
            break
        prefix.append(char)
        i += 1
    return "".join(prefix), pattern[i:]


def scan_groups(pattern: str) -> tuple[int, list[int]]:
    """Where the group opening ``pattern`` closes, and where its top-level ``|`` are."""
    depth = 0
    bars: list[int] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            # Skip the character class: "(" and "|" inside it are plain characters.
            i = pattern.index("]", i + 2 if pattern[i + 1 : i + 2] in ("]", "^") else i + 1)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i, bars
        elif char == "|" and depth == 1:
            bars.append(i)
        i += 1
    raise ValueError(f"unbalanced parentheses in {pattern!r}")


def has_top_level_bar(pattern: str) -> bool:
    """Whether ``pattern`` is an alternation at its top level (``a|b``), which reads as two."""
    return bool(scan_groups(f"({pattern})")[1])


def spelled_out(pattern: str) -> list[str]:
    """``pattern``, with a leading ``(?:a|b)`` group written out into one pattern per branch.

    A pattern without a plain-text start would be tried at every word of every description;
    written out, each variant files under its own first letters.
    """
    prefix, rest = literal_prefix(pattern)
    if len(prefix) >= SHORTEST_USEFUL_PREFIX or not rest.startswith("(?:"):
        return [pattern]
    before = pattern[: len(pattern) - len(rest)]
    end, bars = scan_groups(rest)
    edges = [2, *bars, end]
    branches = [rest[start + 1 : stop] for start, stop in pairwise(edges)]
    after = rest[end + 1 :]
    if after.startswith("?") and not after.startswith("??"):
        branches.append("")
        after = after[1:]
    elif after[:1] in ("*", "+", "{", "?"):
        return [pattern]
    return [variant for branch in branches for variant in spelled_out(before + branch + after)]


def starts_a_word(pattern: str) -> bool:
    """Whether every way ``pattern`` can begin is a letter or a digit, so it starts a word."""
    return all(literal_prefix(variant)[0][:1].isalnum() for variant in spelled_out(pattern))
