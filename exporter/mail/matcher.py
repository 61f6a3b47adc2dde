"""The wording matcher: which row of each wording table a diagnostic text names.

What it does is the plain reading of the tables. The text is normalized once
(:func:`normalize`); a phrase *occurs* where it matches at a word start, that is after a
character other than ``a-z``, ``0-9`` and ``_``. In a :attr:`Wins.FIRST_IN_ORDER` table the
first row any of whose phrases occurs wins, however long or late in the text the phrases of
the other rows are; in a :attr:`Wins.FIRST_MENTIONED` table the row whose phrase occurs
earliest wins, the first row on a tie. Phrases are matched independently: one never uses up
text another needs (a phrase may end in a space that the next phrase starts after).

How it stays fast: every phrase of every table is filed in one trie under its plain-text
start and rendered as one regular expression inside a lookahead, which finds in a single
scan every word start where some phrase occurs, and skips the rest of the text at C speed.
Only at those few places is each table asked, through an alternation of the phrases that
start with that letter, in row order, so that the first alternative that matches is the
first row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from exporter.mail.patterns import literal_prefix, spelled_out
from exporter.mail.smtp import unwrap_reply


class Wins(StrEnum):
    """Which row of a table wins when a text names several."""

    #: The row that comes first in the table, wherever in the text its phrase occurs.
    FIRST_IN_ORDER = "first-in-order"
    #: The row whose phrase occurs earliest in the text; the first row on a tie.
    FIRST_MENTIONED = "first-mentioned"


#: A table: how it picks its winner, and per row (in order) the regular expressions of its
#: phrases. Every expression must start with a letter or a digit.
Table = tuple[Wins, Sequence[Sequence[str]]]

#: Characters that continue a word: a phrase occurs only where none comes before it.
WORD_CHARACTERS: Final = "a-z0-9_"


def normalize(description: str) -> str:
    """The text the tables are matched against, computed once per description.

    Lowercased, a curly apostrophe read as a straight one, a multi-line SMTP reply unwrapped
    ("550-5.7.1 a / 550 5.7.1 b" reads "550-5.7.1 a b", so a phrase split across its lines is
    found), whitespace folded into single spaces, and a space in front, so that the first
    word starts a word too.
    """
    text = description.lower()
    if not _is_folded(text):
        text = " ".join(text.replace("\u2019", "'").split())
    return " " + unwrap_reply(text)


def _is_folded(text: str) -> bool:
    """Whether ``text`` has no whitespace but single spaces (and no control characters):
    three ``str`` tests, several times faster than a regular expression."""
    return text.isascii() and text.isprintable() and "  " not in text


class _Trie:
    """Expressions filed under their plain-text starts, rendered as one regular expression.

    A flat alternation of a few hundred phrases makes the engine try every phrase at every
    word; sharing prefixes lets it drop most of them at their first letter.
    """

    __slots__ = ("children", "ends")

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.ends: list[str] = []

    def add(self, prefix: str, rest: str) -> None:
        node = self
        for char in prefix:
            node = node.children.setdefault(char, _Trie())
        node.ends.append(rest)

    def render(self) -> str:
        branches = [re.escape(char) + child.render() for char, child in self.children.items()]
        if self.ends:
            rests = sorted(set(self.ends))
            branches.append("" if "" in rests else "(?:" + "|".join(rests) + ")")
        if "" in branches:  # a phrase ends here: whatever follows, it occurs
            return ""
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


class Matcher:
    """Wording tables compiled once; :meth:`find` says which row of each a text names."""

    __slots__ = ("_by_letter", "_scan", "_tables")

    def __init__(self, tables: Sequence[Table]) -> None:
        trie = _Trie()
        self._tables = len(tables)
        #: Per first letter, for each table with phrases starting with it: the table, whether
        #: its first answer is final, the phrases as one alternation in row order, and the
        #: row of each of the alternation's groups.
        self._by_letter: dict[str, list[tuple[int, bool, re.Pattern[str], tuple[int, ...]]]] = {}
        for table, (wins, rows) in enumerate(tables):
            for letter, (regex, rows_of) in self._letters(rows, trie).items():
                first_is_final = wins is Wins.FIRST_MENTIONED
                self._by_letter.setdefault(letter, []).append(
                    (table, first_is_final, regex, rows_of)
                )
        # Every word start where some phrase of some table occurs, in one scan: the character
        # class before the lookahead puts each at a word start and lets the engine skip fast
        # over the letters inside words; the lookahead uses up no text, so no phrase can hide
        # another.
        self._scan = re.compile(f"[^{WORD_CHARACTERS}](?={trie.render()})")

    @staticmethod
    def _letters(
        rows: Sequence[Sequence[str]], trie: _Trie
    ) -> dict[str, tuple[re.Pattern[str], tuple[int, ...]]]:
        variants: dict[str, dict[int, list[str]]] = {}
        for row, expressions in enumerate(rows):
            for expression in expressions:
                for variant in spelled_out(expression):
                    prefix, rest = literal_prefix(variant)
                    if not prefix[:1].isalnum():
                        raise ValueError(f"{expression!r} must start with a letter or a digit")
                    trie.add(prefix, rest)
                    variants.setdefault(prefix[0], {}).setdefault(row, []).append(variant)
        letters = {}
        for letter, by_row in variants.items():
            ordered = sorted(by_row)
            # The empty group after each row's phrases tells which row the match belongs to;
            # alternatives are tried in order, so the first that matches is the first row.
            regex = "|".join(f"(?:{'|'.join(by_row[row])})()" for row in ordered)
            letters[letter] = (re.compile(regex), (-1, *ordered))
        return letters

    def find(self, description: str) -> list[int | None]:
        """Per table, the row ``description`` names (see :class:`Wins`), or ``None``."""
        text = normalize(description)
        found: list[int | None] = [None] * self._tables
        final = [False] * self._tables
        by_letter = self._by_letter
        for start in self._scan.finditer(text):
            position = start.end()
            for table, first_is_final, regex, rows in by_letter[text[position]]:
                if final[table]:
                    continue
                match = regex.match(text, position)
                if match is None:
                    continue
                row = rows[match.lastindex or 0]
                best = found[table]
                if best is None or row < best:
                    found[table] = row
                    # Nothing later in the text can change the answer of a first-mentioned
                    # table, nor beat a table's first row.
                    final[table] = first_is_final or row == 0
        return found
