"""The wording matcher does what its docstring says: the plain reading of the tables.

A naive matcher written here tries each row in order with :func:`re.search`; hypothesis
checks that the compiled one agrees with it on texts made of table phrases and noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.mail import BounceType, Reason, Verdict, classify_failure
from exporter.mail.matcher import WORD_CHARACTERS, Matcher, Table, Wins, normalize
from exporter.mail.rulebook import WORDING

IN_ORDER = Wins.FIRST_IN_ORDER
MENTIONED = Wins.FIRST_MENTIONED


def naive(tables: Sequence[Table], description: str) -> list[int | None]:
    """The plain reading: per table, try each row in order against the normalized text."""
    text = normalize(description)
    found: list[int | None] = []
    for wins, rows in tables:
        hits = [
            (match.start(), row)
            for row, expressions in enumerate(rows)
            for expression in expressions
            if (match := re.search(f"(?<![{WORD_CHARACTERS}])(?:{expression})", text))
        ]
        if not hits:
            found.append(None)
        elif wins is IN_ORDER:
            found.append(min(row for _, row in hits))
        else:
            found.append(min(hits)[1])
    return found


def phrases(*rows: Sequence[str]) -> list[list[str]]:
    """Rows of plain phrases as the expressions a table holds."""
    return [[re.escape(phrase) for phrase in row] for row in rows]


# --- Which row wins -------------------------------------------------------------------------


def test_first_row_wins_however_late_its_phrase_comes() -> None:
    matcher = Matcher([(IN_ORDER, phrases(["mailbox full"], ["message too large"]))])
    assert matcher.find("Message too large. Mailbox full.") == [0]


def test_first_row_wins_over_a_longer_phrase_at_the_same_place() -> None:
    rows = phrases(["host not found"], ["host not found, try again"])
    assert Matcher([(IN_ORDER, rows)]).find("Host not found, try again") == [0]


def test_a_phrase_ending_in_a_separator_does_not_use_up_the_next_word() -> None:
    rows = phrases(["mailbox is full"], ["x-unix; "])
    assert Matcher([(IN_ORDER, rows)]).find("x-unix; mailbox is full") == [0]


def test_a_phrase_starting_inside_another_match_is_found() -> None:
    rows = phrases(["user unknown"], ["recipient address rejected: user"])
    text = "Recipient address rejected: User unknown in local recipient table"
    assert Matcher([(IN_ORDER, rows)]).find(text) == [0]


def test_first_mentioned_table_takes_the_earliest_phrase() -> None:
    rows = phrases(["after mail from"], ["after rcpt to"])
    text = "error after RCPT TO:<x@example.org>, retried after MAIL FROM"
    assert Matcher([(MENTIONED, rows)]).find(text) == [1]


def test_first_mentioned_table_breaks_a_tie_by_row() -> None:
    rows = phrases(["in reply to rcpt"], ["in reply to"])
    assert Matcher([(MENTIONED, rows)]).find("(in reply to RCPT TO command)") == [0]


def test_tables_are_read_independently_of_each_other() -> None:
    matcher = Matcher(
        [
            (IN_ORDER, phrases(["mailbox full"])),
            (IN_ORDER, phrases(["user unknown", "mailbox"])),
            (MENTIONED, phrases(["after rcpt to"])),
        ]
    )
    assert matcher.find("after RCPT TO: mailbox full, user unknown") == [0, 0, 0]
    assert matcher.find("nothing here") == [None, None, None]


def test_phrases_match_only_at_a_word_start() -> None:
    matcher = Matcher([(IN_ORDER, [["ube\\b"]])])
    assert matcher.find("see the tube") == [None]
    assert matcher.find("content rejected, UBE") == [0]
    assert matcher.find("(UBE)") == [0]
    assert matcher.find("x_ube") == [None]


def test_a_lookbehind_sees_the_text_before_the_word() -> None:
    rows = [[r"does not exist(?<=\.[a-z]{2} does not exist)"]]
    matcher = Matcher([(IN_ORDER, rows)])
    assert matcher.find("mx.example.jp does not exist") == [0]
    assert matcher.find("the mailbox does not exist") == [None]


def test_a_pattern_that_cannot_start_a_word_is_refused() -> None:
    with pytest.raises(ValueError, match="must start with a letter or a digit"):
        Matcher([(IN_ORDER, [["(?:mailbox|-inbox) full"]])])


# --- Normalization --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["MAILBOX FULL", "MaIlBoX fUlL", "mailbox\n\t  full", "mailbox\u2028full"]
)
def test_case_and_whitespace_do_not_matter(text: str) -> None:
    assert Matcher([(IN_ORDER, phrases(["mailbox full"]))]).find(text) == [0]


def test_curly_apostrophes_read_as_straight_ones() -> None:
    assert normalize("This user doesn\u2019t exist") == " this user doesn't exist"


@pytest.mark.parametrize(
    ("reply", "unwrapped"),
    [
        (
            "550-5.2.2 The mailbox is\n550-5.2.2 full and not\n550 5.2.2 accepting mail",
            " 550-5.2.2 the mailbox is full and not accepting mail",
        ),
        ("452-4.2.2 The mailbox is 452 4.2.2 full", " 452-4.2.2 the mailbox is full"),
        ("421-mx busy\r\n421 try later", " 421-mx busy try later"),
        # Another reply quoted inside is left as it is.
        ("550-5.7.1 refused 421 4.7.0 later", " 550-5.7.1 refused 421 4.7.0 later"),
    ],
)
def test_a_multi_line_smtp_reply_is_read_as_one_sentence(reply: str, unwrapped: str) -> None:
    assert normalize(reply) == unwrapped


def test_a_phrase_split_across_the_lines_of_a_reply_is_found() -> None:
    reply = "550-5.2.2 The email account that you tried to reach is\n550 5.2.2 over quota"
    assert Matcher([(IN_ORDER, phrases(["is over quota"]))]).find(reply) == [0]


@given(st.text(max_size=200))
def test_normalized_text_is_lowercase_with_single_spaces(text: str) -> None:
    normalized = normalize(text)
    assert normalized.startswith(" ")
    assert "  " not in normalized[1:]
    assert all(char == " " or not char.isspace() for char in normalized)
    assert normalized == normalized.lower()


# --- The shipped tables ---------------------------------------------------------------------

SHIPPED: list[Table] = [(table.wins, table.rows()) for table in WORDING.tables]
SHIPPED_MATCHER = Matcher(SHIPPED)


def test_the_issue_example_mailbox_full_outranks_the_local_delivery_program() -> None:
    verdict = classify_failure("", "", "5.2.2", "x-unix; mailbox is full")
    assert verdict == Verdict(Reason.MAILBOX_FULL, BounceType.SOFT)


def test_every_shipped_phrase_is_found_in_its_own_words() -> None:
    for index, table in enumerate(WORDING.tables):
        for rule in table.rules:
            row = table.order.index(rule.value)
            for phrase in rule.phrases:
                found = SHIPPED_MATCHER.find(phrase)[index]
                assert found is not None, (table.name, phrase)
                if table.wins is IN_ORDER:
                    assert found <= row, (table.name, phrase)


# --- The compiled matcher agrees with the naive reading ---------------------------------------

WORDS = [
    "mail",
    "box",
    "mailbox",
    "full",
    "is",
    "user",
    "unknown",
    "x-unix;",
    "host",
    "not",
    "found",
]
NOISE = st.sampled_from(
    [" ", "  ", "\n", ", ", "; ", ".", "-", "<a@b.c>", "550-5.1.1 ", "\n550 5.1.1 ", "_", "(", ")"]
)
PHRASE = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
# Plain phrases, a phrase ending in a separator, and patterns with an optional or
# alternative word, all built from the same few words so that they overlap in the texts.
EXPRESSION = st.one_of(
    PHRASE.map(re.escape),
    PHRASE.map(lambda phrase: re.escape(phrase + " ")),
    st.tuples(PHRASE, st.sampled_from(WORDS)).map(
        lambda pair: re.escape(pair[0]) + f" (?:{re.escape(pair[1])} )?"
    ),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS), PHRASE).map(
        lambda parts: f"(?:{re.escape(parts[0])}|{re.escape(parts[1])}) {re.escape(parts[2])}"
    ),
    PHRASE.map(lambda phrase: re.escape(phrase) + r"\b"),
)
TABLES = st.lists(
    st.tuples(
        st.sampled_from([IN_ORDER, MENTIONED]),
        st.lists(st.lists(EXPRESSION, min_size=1, max_size=3), min_size=1, max_size=5),
    ),
    min_size=1,
    max_size=3,
)


def texts(pieces: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Texts of ``pieces`` and noise, in any case."""
    return (
        st.lists(st.one_of(pieces, NOISE), max_size=14)
        .map("".join)
        .flatmap(lambda text: st.sampled_from([text, text.upper(), text.title()]))
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tables=TABLES)
def test_the_matcher_agrees_with_trying_each_row_in_order(
    data: st.DataObject, tables: list[tuple[Wins, list[list[str]]]]
) -> None:
    text = data.draw(texts(st.one_of(st.sampled_from(WORDS), PHRASE)))
    assert Matcher(tables).find(text) == naive(tables, text)


SHIPPED_PHRASES = sorted(
    {phrase for table in WORDING.tables for rule in table.rules for phrase in rule.phrases}
    | {"mailbox", "user", "account", "sender", "host", "domain", "does not exist", "550 5.1.1"}
)


@settings(max_examples=300, deadline=None)
@given(texts(st.sampled_from(SHIPPED_PHRASES)))
def test_the_shipped_tables_agree_with_trying_each_row_in_order(text: str) -> None:
    assert SHIPPED_MATCHER.find(text) == naive(SHIPPED, text)
