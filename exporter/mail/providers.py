"""Provider knowledge: the rejection codes and wording mailbox providers and filters document.

Large providers say in their own pages what their replies mean: Outlook.com's ``SC-001``,
Yahoo's ``[TSS04]``, Comcast's ``BL000010``, Gmail's wording for an inactive account. These
facts are more precise than any generic reading of the same words or status code (Microsoft's
``5.4.1 Recipient address rejected: Access denied`` means the recipient does not exist, where
Postfix writes the same words for a policy refusal), so this layer runs on every failure
before the generic lexicon. When a reply matches several rows, the row written first in the
file decides; a ``scoped`` row counts only when the recipient domain, the remote host or a
host name or marker in the reply shows the failure is its provider's.

A reply is read as the wording tables are (:func:`exporter.mail.matcher.normalize`):
lowercased, whitespace folded, a multi-line reply unwrapped, either apostrophe.

The rows are data, in ``rules/providers.toml`` (its header documents the schema), loaded and
checked once at import: a row that cannot be used stops the import with its provider and row
named. The classifier matches them in the same single scan of the reply as its wording
(:meth:`ProviderRules.tables`), so knowing the providers costs a failure without any of their
tokens almost nothing.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporter.mail.matcher import Matcher, Table, Wins
from exporter.mail.patterns import scan_groups
from exporter.mail.vocabulary import Reason

#: The rule file shipped with the package.
RULES_PATH: Final = Path(__file__).with_name("rules") / "providers.toml"

_NAME: Final = re.compile(r"[a-z][a-z0-9]*")
_HOST_NAME: Final = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+"
)
_SOURCE: Final = re.compile(r"https?://\S+|RFC \d+\b")
_PROVIDER_KEYS: Final = frozenset({"domains", "hosts", "markers", "rows"})
_ROW_KEYS: Final = frozenset({"token", "pattern", "why", "reason", "meaning", "source", "scoped"})
_ESCAPE: Final = re.compile(r"\\.")
_REASONS: Final = frozenset(reason.value for reason in Reason)
# A token or pattern matches only where a word starts, and a token ending in a letter or
# digit only where its last word ends: "ts01" is not found inside "posts01".
_WORD_END: Final = "(?![a-z0-9_])"


class ProviderRuleError(ValueError):
    """A provider rule that cannot be used; the message names the file, provider and row."""


@dataclass(frozen=True, slots=True)
class ProviderVerdict:
    """What a provider's own documentation says a reply means."""

    reason: Reason
    #: The table the row belongs to: a ``provider`` label value or a filter's name.
    provider: str
    #: The documented code or phrase (or the pattern) that matched.
    token: str
    #: Where the provider documents it.
    source: str


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """One documented code or phrase and the reason it names."""

    provider: str
    #: 1-based position of the row in its provider's table, for messages and reports.
    number: int
    token: str
    is_pattern: bool
    reason: Reason
    meaning: str
    source: str
    #: Counts only when the failure is shown to be the provider's (see ``ProviderTable``).
    scoped: bool
    #: The row as a regular expression for :class:`~exporter.mail.matcher.Matcher`.
    expression: str


@dataclass(frozen=True, slots=True)
class ProviderTable:
    """A provider or filter: what identifies its failures, and its rows."""

    name: str
    domains: frozenset[str]
    hosts: tuple[str, ...]
    markers: tuple[str, ...]
    rows: tuple[ProviderRow, ...]
    #: Host names under ``hosts``, or ``markers``, written in a reply.
    signs: re.Pattern[str] | None

    def owns(self, text: str, domain: str, host: str) -> bool:
        """Whether the failure is this provider's: by recipient domain, remote host or reply.

        Asked only when one of its scoped rows matched, so the names are cleaned up here.
        """
        if domain.strip().rstrip(".").lower() in self.domains:
            return True
        host = host.strip().strip("[]").rstrip(".").lower()
        if host and any(host == suffix or host.endswith("." + suffix) for suffix in self.hosts):
            return True
        return self.signs is not None and self.signs.search(text.lower()) is not None


def _scoped_rows(rows: Sequence[ProviderRow], provider: str) -> tuple[int, ...]:
    return tuple(i for i, row in enumerate(rows) if row.scoped and row.provider == provider)


class ProviderRules:
    """Provider tables compiled for matching; build them with :func:`load_rules`.

    The rows are matched by :class:`exporter.mail.matcher.Matcher`, as wording tables: one
    table of every row that needs no scope, then one per provider of its scoped rows, so
    that the classifier can find provider rows and wording in one scan of the reply
    (:meth:`tables`) and then ask which row counts (:meth:`decide`).
    """

    __slots__ = ("_groups", "_matcher", "providers", "rows")

    def __init__(self, providers: tuple[ProviderTable, ...]) -> None:
        self.providers = providers
        #: Every row of every table, in file order: the order in which rows win.
        self.rows: tuple[ProviderRow, ...] = tuple(row for p in providers for row in p.rows)
        unscoped = tuple(index for index, row in enumerate(self.rows) if not row.scoped)
        #: Per matcher table: the provider whose scope it needs (``None``: no scope), and the
        #: index in :attr:`rows` of each of its rows.
        self._groups: tuple[tuple[ProviderTable | None, tuple[int, ...]], ...] = (
            (None, unscoped),
            *(
                (table, scoped)
                for table in providers
                if (scoped := _scoped_rows(self.rows, table.name))
            ),
        )
        self._matcher = Matcher(self.tables())

    def tables(self) -> list[Table]:
        """The rows as :class:`~exporter.mail.matcher.Matcher` tables, for :meth:`decide`."""
        return [
            (Wins.FIRST_IN_ORDER, [[self.rows[index].expression] for index in indices])
            for _, indices in self._groups
        ]

    def decide(
        self, found: Sequence[int | None], text: str, domain: str, host: str
    ) -> ProviderVerdict | None:
        """The row that counts, given what a matcher of :meth:`tables` found in ``text``.

        Of the rows found, the first in file order whose scope holds: the first row of each
        table is all that can win, since the rows of one table share their scope.
        """
        best: ProviderRow | None = None
        best_index = len(self.rows)
        for (table, indices), row in zip(self._groups, found, strict=True):
            if row is None or indices[row] >= best_index:
                continue
            if table is not None and not table.owns(text, domain, host):
                continue
            best_index = indices[row]
            best = self.rows[best_index]
        if best is None:
            return None
        return ProviderVerdict(best.reason, best.provider, best.token, best.source)

    def reason(self, text: str, domain: str = "", host: str = "") -> ProviderVerdict | None:
        """The documented reason a reply names, or ``None`` when no provider row applies.

        ``domain`` is the recipient's domain and ``host`` the remote host name, either
        possibly empty; they only decide whether a ``scoped`` row counts.
        """
        return self.decide(self._matcher.find(text), text, domain, host)


# --- Loading ---------------------------------------------------------------------------------


def load_rules(document: str, origin: str = "providers.toml") -> ProviderRules:
    """Parse and check a rule file's text; ``origin`` names it in error messages."""
    try:
        data = tomllib.loads(document)
    except tomllib.TOMLDecodeError as exc:
        raise ProviderRuleError(f"{origin}: not valid TOML: {exc}") from exc
    seen: dict[str, str] = {}
    providers = tuple(
        _table(origin, name, body, seen)
        for name, body in data.items()  # tomllib keeps the file's order
    )
    return ProviderRules(providers)


def load_rules_file(path: Path) -> ProviderRules:
    """Read, parse and check a rule file."""
    return load_rules(path.read_text(encoding="utf-8"), origin=path.name)


def _table(origin: str, name: str, body: object, seen: dict[str, str]) -> ProviderTable:
    where = f"{origin}: [{name}]"
    if not isinstance(body, dict):
        raise ProviderRuleError(f"{where}: a provider must be a table")
    if not _NAME.fullmatch(name):
        raise ProviderRuleError(f"{where}: a provider name is lowercase letters and digits")
    unknown = set(body) - _PROVIDER_KEYS
    if unknown:
        raise ProviderRuleError(f"{where}: unknown key(s) {sorted(unknown)}")
    domains = _names(where, "domains", body.get("domains", []))
    hosts = _names(where, "hosts", body.get("hosts", []))
    markers = _strings(where, "markers", body.get("markers", []))
    rows_data = body.get("rows")
    if not isinstance(rows_data, list) or not rows_data:
        raise ProviderRuleError(f"{where}: needs at least one [[{name}.rows]] row")
    rows = tuple(
        _row(f"{where} row {number}", name, number, row, seen)
        for number, row in enumerate(rows_data, start=1)
    )
    for row in rows:
        if row.scoped and not (domains or hosts or markers):
            raise ProviderRuleError(
                f"{where} row {row.number}: `scoped` needs the provider's domains, hosts or markers"
            )
    return ProviderTable(
        name=name,
        domains=frozenset(domains),
        hosts=tuple(hosts),
        markers=tuple(markers),
        rows=rows,
        signs=_signs(hosts, markers),
    )


def _row(where: str, provider: str, number: int, data: object, seen: dict[str, str]) -> ProviderRow:
    if not isinstance(data, dict):
        raise ProviderRuleError(f"{where}: a row must be a table")
    unknown = set(data) - _ROW_KEYS
    if unknown:
        raise ProviderRuleError(f"{where}: unknown key(s) {sorted(unknown)}")
    reason, meaning, source, scoped = _described(where, data)
    token, is_pattern = _matched_text(where, data)
    key = ("pattern:" if is_pattern else "token:") + token
    if key in seen:
        raise ProviderRuleError(f"{where}: {token!r} is already {seen[key]}")
    seen[key] = where
    # The matcher reads replies lowercased, with whitespace folded, a multi-line reply
    # unwrapped and either apostrophe as a straight one; it finds a row where a word starts.
    expression = token if is_pattern else re.escape(token)
    if is_pattern or token[-1].isalnum():
        expression += _WORD_END
    return ProviderRow(
        provider=provider,
        number=number,
        token=token,
        is_pattern=is_pattern,
        reason=reason,
        meaning=meaning,
        source=source,
        scoped=scoped,
        expression=expression,
    )


def _described(where: str, data: dict[str, object]) -> tuple[Reason, str, str, bool]:
    """A row's reason, meaning, source and scope, each checked."""
    value = data.get("reason")
    if not isinstance(value, str) or value not in _REASONS:
        raise ProviderRuleError(f"{where}: reason {value!r} is not in the reason vocabulary")
    reason = Reason(value)
    meaning = data.get("meaning")
    if not isinstance(meaning, str) or not meaning.strip():
        raise ProviderRuleError(f"{where}: every row needs a `meaning`, in our own words")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ProviderRuleError(f"{where}: every row needs a `source`")
    if not _SOURCE.match(source):
        raise ProviderRuleError(
            f"{where}: source {source!r} must be an http(s) URL or an RFC reference ('RFC 3463')"
        )
    scoped = data.get("scoped", False)
    if not isinstance(scoped, bool):
        raise ProviderRuleError(f"{where}: `scoped` is true or false")
    return reason, meaning.strip(), source.strip(), scoped


def _matched_text(where: str, data: dict[str, object]) -> tuple[str, bool]:
    """A row's token (folded) or pattern, and whether it is a pattern."""
    if ("token" in data) == ("pattern" in data):
        raise ProviderRuleError(f"{where}: give exactly one of `token` and `pattern`")
    if "pattern" in data:
        return _pattern(where, data["pattern"], data.get("why")), True
    if "why" in data:
        raise ProviderRuleError(f"{where}: `why` explains a `pattern`; a token needs none")
    return _token(where, data["token"]), False


def _token(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProviderRuleError(f"{where}: `token` must be non-empty text")
    token = " ".join(value.lower().replace("\u2019", "'").split())
    if not token[0].isalnum():
        raise ProviderRuleError(f"{where}: token {value!r} must start with a letter or a digit")
    return token


def _pattern(where: str, value: object, why: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProviderRuleError(f"{where}: `pattern` must be a non-empty regular expression")
    if not isinstance(why, str) or not why.strip():
        raise ProviderRuleError(f"{where}: a `pattern` needs `why`: what plain text cannot say")
    if not value[0].isalnum():
        raise ProviderRuleError(f"{where}: pattern {value!r} must start with a letter or a digit")
    if any(char.isupper() for char in _ESCAPE.sub("", value)):
        raise ProviderRuleError(
            f"{where}: pattern {value!r} must be lowercase: it is matched against lowercased text"
        )
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ProviderRuleError(f"{where}: pattern {value!r} does not compile: {exc}") from exc
    if scan_groups(f"({value})")[1]:
        raise ProviderRuleError(f"{where}: pattern {value!r} has a top-level `|`: use (?:a|b)")
    if compiled.groups:
        raise ProviderRuleError(f"{where}: pattern {value!r} has a capturing group: use (?:...)")
    if compiled.fullmatch(""):
        raise ProviderRuleError(f"{where}: pattern {value!r} matches empty text")
    return value


def _strings(where: str, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProviderRuleError(f"{where}: `{key}` must be a list of non-empty strings")
    return [v.lower() for v in value]


def _names(where: str, key: str, value: object) -> list[str]:
    names = _strings(where, key, value)
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise ProviderRuleError(f"{where}: {key} entry {name!r} is not a domain name")
    return names


def _signs(hosts: Iterable[str], markers: Iterable[str]) -> re.Pattern[str] | None:
    """A host name ending in one of ``hosts``, or a marker word, anywhere in a reply."""
    alternatives = []
    if hosts:
        suffixes = "|".join(re.escape(h) for h in hosts)
        alternatives.append(rf"(?<![a-z0-9-])(?:{suffixes})(?![a-z0-9-]|\.[a-z0-9])")
    if markers:
        words = "|".join(re.escape(m) for m in markers)
        alternatives.append(rf"(?<![a-z0-9_])(?:{words})(?![a-z0-9_])")
    return re.compile("|".join(alternatives)) if alternatives else None


#: The shipped rules, checked at import.
RULES: Final = load_rules_file(RULES_PATH)


def provider_reason(text: str, domain: str = "", host: str = "") -> ProviderVerdict | None:
    """What a provider documents about this reply, or ``None``; see :class:`ProviderRules`."""
    return RULES.reason(text, domain, host)
