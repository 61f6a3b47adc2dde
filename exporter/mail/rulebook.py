"""The rule files of ``exporter/mail/rules/``, loaded, checked and typed once, at import.

A rule the classifier cannot use stops the import with a :class:`RuleError` that names the
file and the row, rather than becoming a rule that silently never matches or a new label
value: an unknown reason or stage, a status code written wrongly, a regex that does not
compile or has a capturing group, a phrase listed twice, a source that is missing or still
reads "UNSOURCED".
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from exporter.mail.matcher import Wins
from exporter.mail.patterns import has_top_level_bar, literal_prefix, starts_a_word
from exporter.mail.smtp import STATES, is_reply_code
from exporter.mail.vocabulary import Reason

RULES_DIR: Final = Path(__file__).with_name("rules")
#: The placeholder once written where no source had been found: a rule must cite one instead.
UNSOURCED: Final = "UNSOURCED"

#: The SMTP stages wording can name: the dialogue's, not ``bounce`` or ``other``.
WORDING_STAGES: Final = STATES[: STATES.index("data") + 1]

_STATUS_TABLES: Final = ("specific", "generic", "subject", "reply_code")
_WORDING_TABLES: Final = ("decisive", "suggestive", "stage")
_STATUS_CODE: Final = re.compile(r"(X|[245])\.([0-9]{1,3})\.([0-9]{1,3})")
_SUBJECT_CODE: Final = re.compile(r"X\.([0-9]{1,3})\.XXX")


class RuleError(ValueError):
    """A rule file the classifier cannot use; the message names the file and the row."""


@dataclass(frozen=True, slots=True)
class StatusRule:
    """One row of ``status.toml``: a code, the reason it names, and where that comes from."""

    table: str
    #: As the file writes it: ``X.1.1``, ``5.4.4``, ``X.3.XXX`` or ``421``.
    code: str
    reason: Reason
    meaning: str
    source: str


@dataclass(frozen=True, slots=True)
class StatusRules:
    """``status.toml`` as lookup tables, keyed as :func:`status_key` and the classifier key."""

    #: ``subject.detail`` (any class) or ``class.subject.detail`` -> reason.
    specific: Mapping[str, Reason]
    generic: Mapping[str, Reason]
    #: ``subject`` -> reason.
    subjects: Mapping[str, Reason]
    #: Three-digit reply code -> reason.
    reply_codes: Mapping[str, Reason]
    rows: tuple[StatusRule, ...]


@dataclass(frozen=True, slots=True)
class WordingRule:
    """One row of ``wording.toml``: a value, its phrases and patterns, and their source."""

    table: str
    #: The row's place among its table's rules, from 1, as error messages name it.
    number: int
    #: A :class:`Reason` value, or a stage for the stage table.
    value: str
    phrases: tuple[str, ...]
    patterns: tuple[str, ...]
    source: str

    def expressions(self) -> tuple[str, ...]:
        """The phrases (escaped) and the patterns, as regular expressions."""
        return (*(re.escape(phrase) for phrase in self.phrases), *self.patterns)


@dataclass(frozen=True, slots=True)
class WordingTable:
    """One table of ``wording.toml``: its rules, and which value wins when several match."""

    name: str
    about: str
    wins: Wins
    #: The values, highest priority first.
    order: tuple[str, ...]
    rules: tuple[WordingRule, ...]

    def rows(self) -> tuple[tuple[str, ...], ...]:
        """One row per value of :attr:`order`, in order: every expression of its rules."""
        return tuple(
            tuple(expr for rule in self.rules if rule.value == value for expr in rule.expressions())
            for value in self.order
        )


@dataclass(frozen=True, slots=True)
class Wording:
    """``wording.toml``: the decisive, suggestive and stage tables."""

    decisive: WordingTable
    suggestive: WordingTable
    stage: WordingTable

    @property
    def tables(self) -> tuple[WordingTable, WordingTable, WordingTable]:
        """The three tables, in the order the matcher reads them."""
        return (self.decisive, self.suggestive, self.stage)


# --- Status codes ----------------------------------------------------------------------------


def parse_status(text: str, file: str = "status.toml") -> StatusRules:
    """Check and type the status-code rules in ``text`` (TOML); ``file`` names it in errors."""
    data = _toml(text, file)
    _only(data, _STATUS_TABLES, file, "top level")
    tables: dict[str, dict[str, Reason]] = {name: {} for name in _STATUS_TABLES}
    rows: list[StatusRule] = []
    seen: dict[str, str] = {}
    for table in _STATUS_TABLES:
        for number, row in enumerate(_array(data, table, file), start=1):
            where = f"{file}: [[{table}]] row {number}"
            field = "code" if table == "reply_code" else "status"
            if not isinstance(row, dict):
                raise RuleError(f"{where}: a row is a table of fields")
            _only(row, (field, "reason", "meaning", "source"), file, where)
            code = _text(row, field, where)
            where = f"{where} ({field} = {code!r})"
            key = _status_key(table, code, where)
            reason = _reason(row, where)
            source = _source(row, where)
            # A code in two tables, or twice in one, would make the first one read win unseen.
            slot = f"{field}:{key}"
            if slot in seen:
                raise RuleError(f"{where}: duplicate row, first in {seen[slot]}")
            seen[slot] = where
            tables[table][key] = reason
            meaning = row.get("meaning", "")
            if not isinstance(meaning, str):
                raise RuleError(f"{where}: meaning must be a string")
            rows.append(StatusRule(table, code, reason, meaning, source))
    return StatusRules(
        specific=MappingProxyType(tables["specific"]),
        generic=MappingProxyType(tables["generic"]),
        subjects=MappingProxyType(tables["subject"]),
        reply_codes=MappingProxyType(tables["reply_code"]),
        rows=tuple(rows),
    )


def _status_key(table: str, code: str, where: str) -> str:
    """The lookup key of a code as written: ``X.1.1`` -> ``1.1``, ``X.3.XXX`` -> ``3``."""
    if table == "reply_code":
        if not is_reply_code(code):
            raise RuleError(f"{where}: a reply code is three digits from 200 to 599")
        return code
    if table == "subject":
        match = _SUBJECT_CODE.fullmatch(code)
        if match is None:
            raise RuleError(f"{where}: a subject is written X.<subject>.XXX, as X.3.XXX")
        return str(int(match.group(1)))
    match = _STATUS_CODE.fullmatch(code)
    if match is None:
        raise RuleError(
            f"{where}: a status is written X.<subject>.<detail> or 5.<subject>.<detail>"
        )
    klass, subject, detail = match.groups()
    short = f"{int(subject)}.{int(detail)}"
    return short if klass == "X" else f"{klass}.{short}"


# --- Wording --------------------------------------------------------------------------------


def parse_wording(text: str, file: str = "wording.toml") -> Wording:
    """Check and type the wording rules in ``text`` (TOML); ``file`` names it in errors."""
    data = _toml(text, file)
    _only(data, ("tables", *_WORDING_TABLES), file, "top level")
    heads = data.get("tables")
    if not isinstance(heads, dict):
        raise RuleError(f"{file}: [tables] is missing: each table's about, wins and order")
    _only(heads, _WORDING_TABLES, file, "[tables]")
    decisive, suggestive, stage = (_wording_table(data, heads, n, file) for n in _WORDING_TABLES)
    return Wording(decisive, suggestive, stage)


def _wording_table(
    data: dict[str, Any], heads: dict[str, Any], name: str, file: str
) -> WordingTable:
    where = f"{file}: [tables.{name}]"
    head = heads.get(name)
    if not isinstance(head, dict):
        raise RuleError(f"{where} is missing")
    _only(head, ("about", "wins", "order"), file, where)
    about = _text(head, "about", where)
    wins = _text(head, "wins", where)
    if wins not in {w.value for w in Wins}:
        raise RuleError(f"{where}: wins must be one of {', '.join(w.value for w in Wins)}")
    key = "stage" if name == "stage" else "reason"
    order = head.get("order")
    if not isinstance(order, list) or not all(isinstance(v, str) for v in order):
        raise RuleError(f"{where}: order must be a list of {key} values")
    for value in order:
        _value(key, value, f"{where} order")
    twice = [value for value in order if order.count(value) > 1]
    if twice:
        raise RuleError(f"{where}: duplicate row {twice[0]!r} in order")
    rules = _wording_rules(_array(data, name, file), name, key, tuple(order), file)
    empty = [value for value in order if not any(rule.value == value for rule in rules)]
    if empty:
        raise RuleError(f"{where}: {empty[0]!r} is in order but has no rules")
    return WordingTable(name, about, Wins(wins), tuple(order), rules)


def _wording_rules(
    rows: list[Any], name: str, key: str, order: tuple[str, ...], file: str
) -> tuple[WordingRule, ...]:
    rules: list[WordingRule] = []
    seen: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        where = f"{file}: [[{name}]] rule {number}"
        if not isinstance(row, dict):
            raise RuleError(f"{where}: a rule is a table of fields")
        _only(row, (key, "phrases", "patterns", "source"), file, where)
        value = _text(row, key, where)
        where = f"{where} ({key} = {value!r})"
        _value(key, value, where)
        if value not in order:
            raise RuleError(f"{where}: {value!r} is not in [tables.{name}] order")
        phrases = _strings(row, "phrases", where)
        patterns = _strings(row, "patterns", where)
        if not phrases and not patterns:
            raise RuleError(f"{where}: a rule needs phrases or patterns")
        for phrase in phrases:
            _check_phrase(phrase, where)
        for pattern in patterns:
            _check_pattern(pattern, where)
        for text in (*phrases, *patterns):
            # A phrase and a pattern that spells the same plain text are the same rule too.
            prefix, rest = literal_prefix(text) if text in patterns else (text, "")
            same = prefix if not rest else text
            if same in seen:
                raise RuleError(f"{where}: duplicate row {text!r}, first in {seen[same]}")
            seen[same] = where
        rules.append(WordingRule(name, number, value, phrases, patterns, _source(row, where)))
    return tuple(rules)


def _value(key: str, value: str, where: str) -> None:
    if key == "reason" and value not in {reason.value for reason in Reason}:
        raise RuleError(f"{where}: unknown reason {value!r} (see exporter/mail/vocabulary.py)")
    if key == "stage" and value not in WORDING_STAGES:
        raise RuleError(f"{where}: unknown stage {value!r}: one of {', '.join(WORDING_STAGES)}")


def _check_phrase(phrase: str, where: str) -> None:
    if phrase != phrase.lower():
        raise RuleError(f"{where}: phrase {phrase!r} is matched against lowercased text")
    if not phrase[:1].isalnum():
        raise RuleError(f"{where}: phrase {phrase!r} must start with a letter or a digit")
    if "  " in phrase or any(char.isspace() and char != " " for char in phrase):
        raise RuleError(f"{where}: phrase {phrase!r}: the text's whitespace is single spaces")


def _check_pattern(pattern: str, where: str) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise RuleError(f"{where}: pattern {pattern!r} does not compile: {error}") from None
    if compiled.groups:
        raise RuleError(f"{where}: capturing group in pattern {pattern!r}: use (?:...)")
    if has_top_level_bar(pattern):
        raise RuleError(f"{where}: top-level | in pattern {pattern!r}: make it two patterns")
    if not starts_a_word(pattern):
        raise RuleError(f"{where}: pattern {pattern!r} must start with a letter or a digit")


# --- Reading TOML ---------------------------------------------------------------------------


def _toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleError(f"{file}: not valid TOML: {error}") from None


def _array(data: dict[str, Any], name: str, file: str) -> list[Any]:
    rows = data.get(name, [])
    if not isinstance(rows, list):
        raise RuleError(f"{file}: {name} must be an array of tables, [[{name}]]")
    return rows


def _only(table: dict[str, Any], allowed: tuple[str, ...], file: str, where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        where = where if where.startswith(file) else f"{file}: {where}"
        raise RuleError(f"{where}: unknown field {unknown[0]!r}; known: {', '.join(allowed)}")


def _text(row: dict[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise RuleError(f"{where}: {name} is missing or empty")
    return value


def _strings(row: dict[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = row.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"{where}: {name} must be a list of non-empty strings")
    return tuple(value)


def _reason(row: dict[str, Any], where: str) -> Reason:
    value = _text(row, "reason", where)
    _value("reason", value, where)
    return Reason(value)


def _source(row: dict[str, Any], where: str) -> str:
    source = row.get("source")
    if not isinstance(source, str) or not source.strip():
        raise RuleError(f"{where}: source is missing: cite the RFC, MTA or provider page")
    if source.strip().upper() == UNSOURCED:
        raise RuleError(
            f"{where}: source is {source.strip()!r}: cite the RFC, MTA or provider page, "
            "or remove the rule"
        )
    return source


def load_status(path: Path = RULES_DIR / "status.toml") -> StatusRules:
    """:func:`parse_status` of a file."""
    return parse_status(path.read_text(encoding="utf-8"), path.name)


def load_wording(path: Path = RULES_DIR / "wording.toml") -> Wording:
    """:func:`parse_wording` of a file."""
    return parse_wording(path.read_text(encoding="utf-8"), path.name)


STATUS: Final = load_status()
WORDING: Final = load_wording()
