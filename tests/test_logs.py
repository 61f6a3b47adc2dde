"""Logging set-up: JSON lines when piped, console when asked, stdlib logging included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from exporter.logs import LogFormat, configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_auto_format_writes_json_lines_when_the_stream_is_not_a_terminal(
    stream: io.StringIO,
) -> None:
    configure_logging("info", LogFormat.AUTO, stream)
    structlog.get_logger("t").info("failure", domain="gmail.com")
    [line] = lines(stream)
    assert line["event"] == "failure"
    assert line["domain"] == "gmail.com"
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")


def test_level_filters_lower_levels(stream: io.StringIO) -> None:
    configure_logging("warning", LogFormat.JSON, stream)
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_standard_library_logging_comes_out_as_the_same_json(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.JSON, stream)
    logging.getLogger("aiohttp.server").error("Error handling request")
    [line] = lines(stream)
    assert (line["event"], line["level"], line["logger"]) == (
        "Error handling request",
        "error",
        "aiohttp.server",
    )


def test_console_format_is_readable_not_json(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.CONSOLE, stream)
    structlog.get_logger("t").info("failure", domain="gmail.com")
    text = stream.getvalue()
    assert "failure" in text
    assert "domain=gmail.com" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_context_variables_reach_every_line(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.JSON, stream)
    structlog.contextvars.bind_contextvars(request_id="abc")
    structlog.get_logger("t").info("delivery")
    assert lines(stream)[0]["request_id"] == "abc"
