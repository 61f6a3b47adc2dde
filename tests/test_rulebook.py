"""The rule files: what loads, and one refusal per kind of invalid rule, named by file and row."""

from __future__ import annotations

import re

import pytest

from exporter.mail.matcher import Wins
from exporter.mail.rulebook import (
    STATUS,
    UNSOURCED,
    WORDING,
    RuleError,
    parse_status,
    parse_wording,
)
from exporter.mail.vocabulary import Reason

# --- Wording --------------------------------------------------------------------------------

WORDING_HEAD = """
[tables.decisive]
about = "names its cause"
wins = "first-in-order"
order = ["mailboxfull"]

[tables.suggestive]
about = "points at a cause"
wins = "first-in-order"
order = ["userunknown"]

[tables.stage]
about = "names the stage"
wins = "first-mentioned"
order = ["rcpt"]

[[suggestive]]
reason = "userunknown"
phrases = ["user unknown"]
source = "Postfix smtpd(8)"

[[stage]]
stage = "rcpt"
phrases = ["in reply to rcpt to command"]
source = "Postfix smtp(8) client"
"""

GOOD_RULE = """
[[decisive]]
reason = "mailboxfull"
phrases = ["mailbox full"]
source = "RFC 3463 section 3.3"
"""


def wording(*rules: str) -> str:
    """A small wording file: the head above, then ``rules`` (TOML)."""
    return WORDING_HEAD + "".join(rules)


def refused(text: str, *, status: bool = False) -> str:
    """The message of the RuleError that ``text`` is refused with."""
    with pytest.raises(RuleError) as caught:
        (parse_status if status else parse_wording)(text, "small.toml")
    return str(caught.value)


def test_a_small_valid_file_loads_into_rows_in_order() -> None:
    loaded = parse_wording(wording(GOOD_RULE), "small.toml")

    assert loaded.decisive.wins is Wins.FIRST_IN_ORDER
    assert loaded.stage.wins is Wins.FIRST_MENTIONED
    assert loaded.decisive.order == ("mailboxfull",)
    assert loaded.decisive.rows() == ((re.escape("mailbox full"),),)
    (rule,) = loaded.decisive.rules
    assert (rule.number, rule.value, rule.source) == (1, "mailboxfull", "RFC 3463 section 3.3")


def test_unknown_reason_is_refused_naming_file_and_rule() -> None:
    rule = GOOD_RULE + '\n[[decisive]]\nreason = "mailbox_full"\nphrases = ["x"]\nsource = "s"\n'
    message = refused(wording(rule))
    assert message.startswith("small.toml: [[decisive]] rule 2 (reason = 'mailbox_full')")
    assert "unknown reason 'mailbox_full'" in message


def test_unknown_reason_in_the_order_is_refused() -> None:
    text = wording(GOOD_RULE).replace('order = ["mailboxfull"]', 'order = ["mailboxful"]')
    assert "small.toml: [tables.decisive] order: unknown reason 'mailboxful'" in refused(text)


def test_unknown_stage_is_refused() -> None:
    rule = '\n[[stage]]\nstage = "quit"\nphrases = ["after quit"]\nsource = "s"\n'
    message = refused(wording(GOOD_RULE, rule))
    assert "[[stage]] rule 2 (stage = 'quit')" in message
    assert "unknown stage 'quit'" in message


def test_regex_that_does_not_compile_is_refused() -> None:
    rule = GOOD_RULE.replace('phrases = ["mailbox full"]', "patterns = ['mailbox (?:full']")
    message = refused(wording(rule))
    assert "[[decisive]] rule 1 (reason = 'mailboxfull')" in message
    assert "does not compile" in message


def test_capturing_group_is_refused() -> None:
    rule = GOOD_RULE.replace('phrases = ["mailbox full"]', "patterns = ['mailbox (full|over)']")
    assert "capturing group in pattern 'mailbox (full|over)'" in refused(wording(rule))


def test_top_level_alternation_is_refused() -> None:
    rule = GOOD_RULE.replace('phrases = ["mailbox full"]', "patterns = ['mailbox full|inbox full']")
    assert "top-level | in pattern" in refused(wording(rule))


@pytest.mark.parametrize("pattern", [r"\bmailbox full", r"(?:mailbox|-inbox) full", " mailbox"])
def test_pattern_that_cannot_start_a_word_is_refused(pattern: str) -> None:
    rule = GOOD_RULE.replace('phrases = ["mailbox full"]', f"patterns = ['{pattern}']")
    assert "must start with a letter or a digit" in refused(wording(rule))


def test_phrase_that_cannot_start_a_word_is_refused() -> None:
    rule = GOOD_RULE.replace('"mailbox full"', '"-mailbox full"')
    assert "must start with a letter or a digit" in refused(wording(rule))


def test_phrase_with_capitals_is_refused_since_the_text_is_lowercased() -> None:
    rule = GOOD_RULE.replace('"mailbox full"', '"Mailbox full"')
    assert "is matched against lowercased text" in refused(wording(rule))


def test_phrase_with_unfolded_whitespace_is_refused() -> None:
    rule = GOOD_RULE.replace('"mailbox full"', '"mailbox  full"')
    assert "whitespace is single spaces" in refused(wording(rule))


def test_duplicate_phrase_is_refused_naming_both_rules() -> None:
    again = GOOD_RULE.replace("RFC 3463 section 3.3", "elsewhere")
    message = refused(wording(GOOD_RULE, again))
    assert "small.toml: [[decisive]] rule 2 (reason = 'mailboxfull')" in message
    assert "duplicate row 'mailbox full', first in small.toml: [[decisive]] rule 1" in message


def test_pattern_spelling_out_a_listed_phrase_is_a_duplicate() -> None:
    again = GOOD_RULE.replace('phrases = ["mailbox full"]', r"patterns = ['mailbox\ full']")
    assert "duplicate row" in refused(wording(GOOD_RULE, again))


def test_duplicate_row_in_the_order_is_refused() -> None:
    text = wording(GOOD_RULE).replace(
        'order = ["mailboxfull"]', 'order = ["mailboxfull", "mailboxfull"]'
    )
    assert "[tables.decisive]: duplicate row 'mailboxfull' in order" in refused(text)


def test_missing_source_is_refused() -> None:
    rule = GOOD_RULE.replace('source = "RFC 3463 section 3.3"\n', "")
    message = refused(wording(rule))
    assert "[[decisive]] rule 1 (reason = 'mailboxfull'): source is missing" in message


def test_empty_source_is_refused() -> None:
    rule = GOOD_RULE.replace('source = "RFC 3463 section 3.3"', 'source = "  "')
    assert "source is missing" in refused(wording(rule))


@pytest.mark.parametrize("placeholder", [UNSOURCED, "unsourced", " Unsourced  "])
def test_unsourced_rule_is_refused_naming_file_and_rule(placeholder: str) -> None:
    rule = GOOD_RULE.replace('"RFC 3463 section 3.3"', f'"{placeholder}"')
    message = refused(wording(rule))
    assert message.startswith("small.toml: [[decisive]] rule 1 (reason = 'mailboxfull'): source")
    assert "cite the RFC, MTA or provider page" in message


def test_rule_for_a_reason_outside_the_order_is_refused() -> None:
    rule = '\n[[decisive]]\nreason = "blocked"\nphrases = ["spamhaus"]\nsource = "s"\n'
    assert "'blocked' is not in [tables.decisive] order" in refused(wording(GOOD_RULE, rule))


def test_reason_in_the_order_without_rules_is_refused() -> None:
    assert "'mailboxfull' is in order but has no rules" in refused(wording())


def test_rule_without_phrases_or_patterns_is_refused() -> None:
    rule = GOOD_RULE.replace('phrases = ["mailbox full"]\n', "")
    assert "a rule needs phrases or patterns" in refused(wording(rule))


def test_unknown_field_is_refused() -> None:
    rule = GOOD_RULE.replace('phrases = ["mailbox full"]', 'phrase = ["mailbox full"]')
    message = refused(wording(rule))
    assert "[[decisive]] rule 1" in message
    assert "unknown field 'phrase'" in message


def test_unknown_way_to_pick_a_winner_is_refused() -> None:
    text = wording(GOOD_RULE).replace('wins = "first-mentioned"', 'wins = "longest"')
    assert "[tables.stage]: wins must be one of" in refused(text)


def test_invalid_toml_is_refused_naming_the_file() -> None:
    assert refused("[[decisive]\n").startswith("small.toml: not valid TOML")


# --- Status codes ---------------------------------------------------------------------------

GOOD_STATUS = """
[[specific]]
status = "X.1.1"
reason = "userunknown"
meaning = "Bad destination mailbox address"
source = "RFC 3463 section 3.2"

[[specific]]
status = "5.4.4"
reason = "hostunknown"
source = "RFC 3463 section 3.5"

[[generic]]
status = "X.4.7"
reason = "expired"
source = "RFC 3463 section 3.5"

[[subject]]
status = "X.7.XXX"
reason = "securityerror"
source = "RFC 3463 section 2"

[[reply_code]]
code = "421"
reason = "systemerror"
source = "RFC 5321 section 4.2.3"
"""


def test_status_codes_are_keyed_as_the_classifier_looks_them_up() -> None:
    loaded = parse_status(GOOD_STATUS, "small.toml")

    assert dict(loaded.specific) == {"1.1": Reason.USER_UNKNOWN, "5.4.4": Reason.HOST_UNKNOWN}
    assert dict(loaded.generic) == {"4.7": Reason.EXPIRED}
    assert dict(loaded.subjects) == {"7": Reason.SECURITY_ERROR}
    assert dict(loaded.reply_codes) == {"421": Reason.SYSTEM_ERROR}
    assert loaded.rows[0].meaning == "Bad destination mailbox address"


def test_status_with_an_unknown_reason_is_refused() -> None:
    message = refused(GOOD_STATUS.replace('"userunknown"', '"nosuchuser"'), status=True)
    assert message.startswith("small.toml: [[specific]] row 1 (status = 'X.1.1')")
    assert "unknown reason 'nosuchuser'" in message


@pytest.mark.parametrize("code", ["5.1", "X.1.1.1", "x.1.1", "3.1.1", "X.1.XXX"])
def test_status_written_wrongly_is_refused(code: str) -> None:
    message = refused(GOOD_STATUS.replace('"X.1.1"', f'"{code}"'), status=True)
    assert f"[[specific]] row 1 (status = '{code}'): a status is written" in message


def test_subject_written_wrongly_is_refused() -> None:
    message = refused(GOOD_STATUS.replace('"X.7.XXX"', '"X.7.1"'), status=True)
    assert "[[subject]] row 1 (status = 'X.7.1'): a subject is written X.<subject>.XXX" in message


def test_reply_code_written_wrongly_is_refused() -> None:
    message = refused(GOOD_STATUS.replace('"421"', '"42"'), status=True)
    assert "[[reply_code]] row 1 (code = '42'): a reply code is three digits" in message


def test_status_in_two_tables_is_a_duplicate() -> None:
    text = GOOD_STATUS.replace('status = "X.4.7"', 'status = "X.1.1"')
    message = refused(text, status=True)
    assert "small.toml: [[generic]] row 1 (status = 'X.1.1'): duplicate row" in message
    assert "first in small.toml: [[specific]] row 1" in message


def test_status_with_leading_zeros_is_the_same_code() -> None:
    text = GOOD_STATUS.replace('status = "X.4.7"', 'status = "X.01.001"')
    assert "duplicate row" in refused(text, status=True)


def test_status_without_a_source_is_refused() -> None:
    text = GOOD_STATUS.replace('source = "RFC 5321 section 4.2.3"\n', "")
    assert "[[reply_code]] row 1 (code = '421'): source is missing" in refused(text, status=True)


def test_unsourced_status_row_is_refused() -> None:
    text = GOOD_STATUS.replace('source = "RFC 5321 section 4.2.3"', f'source = "{UNSOURCED}"')
    message = refused(text, status=True)
    assert message.startswith("small.toml: [[reply_code]] row 1 (code = '421'): source")


def test_status_with_an_unknown_field_is_refused() -> None:
    text = GOOD_STATUS.replace('meaning = "Bad', 'means = "Bad')
    assert "unknown field 'means'" in refused(text, status=True)


# --- The shipped files ----------------------------------------------------------------------


def test_every_shipped_row_names_its_source() -> None:
    sources: list[tuple[object, str]] = [
        (rule, rule.source) for table in WORDING.tables for rule in table.rules
    ]
    sources += [(row, row.source) for row in STATUS.rows]
    for row, source in sources:
        assert source.strip(), row
        assert source.strip().upper() != UNSOURCED, row


def test_the_shipped_status_codes_cover_the_rfc_3463_subjects() -> None:
    assert set(STATUS.subjects) == {"3", "4", "6", "7"}
    assert STATUS.specific["1.1"] is Reason.USER_UNKNOWN
    assert STATUS.specific["5.4.4"] is Reason.HOST_UNKNOWN
    assert STATUS.specific["4.4.4"] is Reason.NETWORK_ERROR
    assert STATUS.generic["4.7"] is Reason.EXPIRED


def test_the_shipped_wording_tables_pick_winners_as_documented() -> None:
    assert WORDING.decisive.wins is Wins.FIRST_IN_ORDER
    assert WORDING.suggestive.wins is Wins.FIRST_IN_ORDER
    assert WORDING.stage.wins is Wins.FIRST_MENTIONED
    assert WORDING.stage.order == ("connect", "helo", "starttls", "auth", "mail", "rcpt", "data")
