"""``smtpeter-exporter classify``: payload lines and raw messages in, JSON lines out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import main
from tests.test_app_bounces import ARF, DSN

SCRIPT = Path(sys.executable).parent / "smtpeter-exporter"


def output(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_payload_lines_gain_the_classification_in_input_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payloads = tmp_path / "failures.jsonl"
    payloads.write_text(
        json.dumps(
            {
                "id": "1",
                "recipient": "a@GMAIL.com",
                "state": "RCPT TO",
                "code": "550",
                "extended": "5.1.1",
                "description": "user unknown",
            }
        )
        + "\n\n"
        + json.dumps({"recipient": "b@example.org", "code": "452", "description": "mailbox full"})
        + "\n"
    )
    assert main(["classify", str(payloads)], environ={}) == 0
    first, second = output(capsys)
    assert first == {
        "id": "1",
        "recipient": "a@GMAIL.com",
        "state": "rcpt",
        "code": "550",
        "extended": "5.1.1",
        "description": "user unknown",
        "reason": "userunknown",
        "bounce_type": "hard",
        "code_class": "5xx",
        "status_class": "5",
        "status_subject": "1",
        "domain": "gmail.com",
    }
    assert (second["reason"], second["bounce_type"], second["state"]) == (
        "mailboxfull",
        "soft",
        "other",
    )
    assert (second["status_class"], second["status_subject"]) == ("none", "none")


def test_malformed_lines_give_error_lines_and_exit_1_but_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = "not json\n[1]\n" + json.dumps({"recipient": "nobody"}) + "\n"
    stdin += json.dumps({"recipient": "a@b.example", "code": "550"}) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["classify"], environ={}) == 1
    lines = output(capsys)
    assert lines[:3] == [
        {"file": "-", "line": 1, "error": "not a JSON object"},
        {"file": "-", "line": 2, "error": "not a JSON object"},
        {"file": "-", "line": 3, "error": "recipient has no domain", "field": "recipient"},
    ]
    assert lines[3]["domain"] == "b.example"


def test_unreadable_payload_file_is_an_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["classify", str(missing)], environ={}) == 1
    assert output(capsys) == [{"file": str(missing), "error": "No such file or directory"}]


def test_mime_mode_writes_a_line_per_recipient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = tmp_path / "dsn.eml"
    dsn.write_text(DSN)
    arf = tmp_path / "arf.eml"
    arf.write_text(ARF)
    assert main(["classify", "--mime", str(dsn), str(arf)], environ={}) == 0
    bounce, complaint = output(capsys)
    assert bounce == {
        "file": str(dsn),
        "recipient": "someone@gmail.com",
        "status": "5.1.1",
        "code": "550",
        "description": bounce["description"],
        "reason": "userunknown",
        "bounce_type": "hard",
        "kind": "dsn",
    }
    assert (complaint["recipient"], complaint["kind"], complaint["feedback_type"]) == (
        "reader@yahoo.com",
        "feedback",
        "abuse",
    )


def test_mime_mode_reports_unreadable_files_and_unrecognized_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letter = tmp_path / "letter.eml"
    letter.write_text("From: a@b.example\r\nSubject: hello\r\n\r\nJust a letter.\r\n")
    missing = tmp_path / "missing.eml"
    assert main(["classify", "--mime", str(letter), str(missing)], environ={}) == 1
    unrecognized, error = output(capsys)
    assert (unrecognized["kind"], unrecognized["recipient"], unrecognized["reason"]) == (
        "unrecognized",
        "",
        "undefined",
    )
    assert error == {"file": str(missing), "error": "No such file or directory"}


def test_console_script_classifies_stdin() -> None:
    payload = json.dumps({"recipient": "a@gmail.com", "code": "421", "state": "connect"})
    result = subprocess.run(
        [str(SCRIPT), "classify"],
        check=False,
        input=payload + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert (line["state"], line["code_class"]) == ("connect", "4xx")
