"""Logging set-up: JSON lines when piped, console when asked, stdlib logging included."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
import structlog
from aiohttp.test_utils import make_mocked_request

from exporter.logs import (
    WITHHELD,
    BufferedSink,
    DirectSink,
    LogFormat,
    LogUnavailable,
    RecipientMode,
    configure_logging,
    logged_path,
    mask_addresses,
)


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


def _fail_with(secret: str) -> None:
    body = f"recipient={secret}"  # a local variable holding request content
    raise ValueError(f"cannot parse {body}")


def _break_pipe() -> None:
    raise BrokenPipeError(32, "Broken pipe")


def test_json_tracebacks_show_frames_but_no_locals_and_no_message(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.JSON, stream)
    try:
        try:
            _fail_with("john@gmail.com")
        except ValueError as exc:
            raise KeyError("john@gmail.com") from exc
    except KeyError:
        structlog.get_logger("t").exception("internal_error")
    text = stream.getvalue()
    assert "john" not in text
    [line] = lines(stream)
    stacks = line["exception"]
    assert isinstance(stacks, list)
    assert [stack["exc_type"] for stack in stacks] == ["KeyError", "ValueError"]
    assert {stack["exc_value"] for stack in stacks} == {WITHHELD}
    frames = [frame for stack in stacks for frame in stack["frames"]]
    assert "_fail_with" in [frame["name"] for frame in frames]
    assert all(set(frame) == {"filename", "lineno", "name"} for frame in frames)


def test_standard_library_tracebacks_are_redacted_too(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.JSON, stream)
    try:
        _fail_with("b'zz' from the request line")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    try:
        _break_pipe()
    except BrokenPipeError:
        logging.getLogger("asyncio").exception("write failed")
    assert "zz" not in stream.getvalue()
    first, second = lines(stream)
    assert first["exception"][0]["exc_value"] == WITHHELD  # type: ignore[index]
    # Python writes an OSError's message from errno, not from what a client sent: kept.
    assert second["exception"][0]["exc_value"] == "[Errno 32] Broken pipe"  # type: ignore[index]


def test_console_tracebacks_have_no_message_either(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.CONSOLE, stream)
    try:
        _fail_with("s3cret")
    except ValueError:
        structlog.get_logger("t").exception("internal_error")
    text = stream.getvalue()
    assert "s3cret" not in text
    assert f"ValueError: {WITHHELD}" in text
    assert "in _fail_with" in text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("550 5.1.1 <john.doe@Gmail.COM>: user unknown", "550 5.1.1 <*@gmail.com>: user unknown"),
        ('"john doe"@example.com said no', "*@example.com said no"),
        ("RCPT TO:jane+tag@example.org.", "RCPT TO:*@example.org."),
        (
            "https://x.example/?email=john%40gmail.com&u=1",
            "https://x.example/?email=*@gmail.com&u=1",
        ),
        ("o'brien@example.ie, a@[192.0.2.1]", "*@example.ie, *@[192.0.2.1]"),
        ("jöhn@bücher.example", "*@xn--bcher-kva.example"),
        ("*@gmail.com stays", "*@gmail.com stays"),
        ("no address @ here, nor user@", "no address @ here, nor user@"),
    ],
)
def test_addresses_in_free_text_are_masked_to_their_domain(text: str, masked: str) -> None:
    assert mask_addresses(text, RecipientMode.DOMAIN) == masked
    assert mask_addresses(text, RecipientMode.FULL) == text


def test_hash_mode_masks_addresses_in_text_as_it_shows_recipients() -> None:
    digest = hashlib.sha256(b"john@gmail.com").hexdigest()
    assert mask_addresses("to john@GMAIL.com.", RecipientMode.HASH) == f"to sha256:{digest}."


def test_masking_hostile_text_takes_linear_time() -> None:
    hostile = ("a" * 300 + "@") * 2000 + "x" * 100_000 + "%40" * 10_000
    started = time.perf_counter()
    mask_addresses(hostile, RecipientMode.DOMAIN)
    assert time.perf_counter() - started < 0.5


def test_every_line_masks_addresses_when_recipients_are_hidden(stream: io.StringIO) -> None:
    configure_logging("info", LogFormat.JSON, stream, recipient_mode=RecipientMode.DOMAIN)
    structlog.get_logger("t").warning(
        "webhook_rejected", error="type 'john@gmail.com' is not a webhook type"
    )
    logging.getLogger("aiohttp.access").info("from %s", "jane@example.org")
    assert [line.get("error", line["event"]) for line in lines(stream)] == [
        "type '*@gmail.com' is not a webhook type",
        "from *@example.org",
    ]


def test_the_buffered_sink_refuses_when_full_and_writes_everything_at_close() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as out, os.fdopen(read_fd) as reader:
        sink = BufferedSink(out, capacity=2)
        blocked = "x" * (1 << 20)  # bigger than the pipe: the writer thread blocks on it
        sink.write(blocked)
        deadline = time.monotonic() + 5
        while sink.waiting and time.monotonic() < deadline:
            time.sleep(0.001)
        sink.write("one")
        sink.write("two")
        with pytest.raises(LogUnavailable, match="full"):
            sink.write("three")
        sink.offer("dropped")
        assert sink.dropped == 1
        drained = threading.Thread(target=lambda: lines_read.extend(reader.read().splitlines()))
        lines_read: list[str] = []
        drained.start()
        sink.close()
        out.close()
        drained.join(5)
    assert lines_read == [blocked, "one", "two"]


def test_a_broken_stream_refuses_lines_directly_and_through_a_buffer() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(LogUnavailable, match="BrokenPipeError"):
        DirectSink(Broken()).write("line")
    buffered = BufferedSink(Broken(), capacity=10)
    buffered.write("accepted, then lost")
    buffered.close()
    assert buffered.lost == 1
    with pytest.raises(LogUnavailable, match="BrokenPipeError"):
        buffered.write("refused")


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/s3cret/webhooks/nonsense", "/<token>/webhooks/nonsense"),
        ("/s3cret/webhooks", "/<token>/webhooks"),
        ("/webhooks/failures", "/webhooks/failures"),
        ("/metrics", "/metrics"),
        ("/s3cret/webhooksx", "/s3cret/webhooksx"),
    ],
)
def test_a_secret_segment_before_webhooks_is_masked_even_when_no_route_matched(
    path: str, logged: str
) -> None:
    assert logged_path(make_mocked_request("POST", path)) == logged


def test_a_line_the_stream_cannot_encode_is_lost_alone_not_the_whole_buffer() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    sink = BufferedSink(stream, capacity=10)
    sink.write("caf\udce9")
    sink.write("ok")
    sink.close()
    assert sink.lost == 1
    assert raw.getvalue() == b"ok\n"
