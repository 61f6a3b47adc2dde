"""Fuzzing every endpoint of the real process over HTTP: never a 5xx, never a crash.

Each test starts the console script (tests/test_process.py) in one authentication mode and
sends it generated requests on keep-alive connections: every method, webhook and monitoring
paths, unknown ones and the token path segment; form, JSON, multipart, none and odd content
types, with parameters and charsets; fields with quotes, newlines, NUL, lone surrogates,
bidi and combining marks, huge values and repeats; broken MIME in ``mime``; compressed
bodies; odd X-Request-Id, Authorization and signature header values. In signature mode
requests are signed as SMTPeter signs them (tests/signing.py) with a key pinned by
``--smtpeter.public-key-file``, so no DNS is needed, and then sometimes spoiled.

After every request: the answer came, it is not a 5xx (no 503 either: a pinned key and a
file log cannot be unavailable), a 4xx is JSON with an ``error``, and no log line is an
error. After the run: ``/metrics`` passes ``promtool check metrics``, the exporter's series
stay within the worst case of the series budget, every accepted event has its log line,
and the process exits 0 on SIGTERM.

The runs are derandomized, so CI sees the same requests every time.
``SMTPETER_FUZZ_EXAMPLES`` sets the examples per test (default 2,000) for a longer local run.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import os
import re
import socket
import subprocess
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.series import measure
from benchmarks.traffic import Traffic, arf, dsn
from exporter.events import Kind
from exporter.middlewares import DISPATCH_PATH, KIND_PATHS
from tests.conftest import require_tool
from tests.signing import COPERNICA_ID, MINIMUM, new_key, sign
from tests.test_fuzz import CHARSET_NAMES, MIME_PIECES, ODD_TEXT
from tests.test_process import Running, running

pytestmark = pytest.mark.slow

EXAMPLES: Final = int(os.environ.get("SMTPETER_FUZZ_EXAMPLES", "2000"))
FUZZ_SETTINGS: Final = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
#: The body limit of the unauthenticated process: small, so 413 is reached quickly.
SMALL_BODY_LIMIT: Final = 64 * 1024
TOKEN: Final = "fuzz-s3cret"
DOMAIN_LIMIT: Final = 100
#: Distinct new domains posted after the fuzzing, so the domain cap is reached for certain.
TOP_UP_DOMAINS: Final = DOMAIN_LIMIT + 20
PATH_OF_KIND: Final = {kind: path for path, kind in KIND_PATHS.items()}
SIGNATURE_HEADERS: Final = ("Signature", "Digest", "Date", "X-Copernica-ID", "X-Nonce")
_PLAIN_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_GENERATED_REQUEST_ID: Final = re.compile(r"[0-9a-f]{32}")
_WEBHOOK_ROUTE: Final = re.compile(r"(?:/[^/?]+)?(/webhooks(?:/[a-z]+)?)")


# --- Requests and answers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP/1.1 request as sent on the wire."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def wire(self) -> bytes:
        head = f"{self.method} {self.target} HTTP/1.1\r\n".encode("utf-8", "surrogatepass")
        for name, value in self.headers:
            head += name.encode("ascii") + b": " + value.encode("utf-8", "surrogatepass") + b"\r\n"
        return head + b"\r\n" + self.body

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 400 else self.body[:400] + b"..."
        return f"Request({self.method} {self.target!r}, headers={self.headers!r}, body={body!r})"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:  # noqa: ANN401 - whatever the body holds
        return json.loads(self.body)


class Connection:
    """A keep-alive connection that sends raw requests and reads whole answers, reopening
    when the server closed it after an answer."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._sock: socket.socket | None = None

    def send(self, request: Request) -> Answer:
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self._port), timeout=15)
        sock = self._sock
        try:
            sock.sendall(request.wire())
            response = http.client.HTTPResponse(sock, method=request.method)
            response.begin()
            body = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return Answer(response.status, response.headers, body)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# --- What is generated -------------------------------------------------------------------------

#: SMTPeter's field names, the dispatch field, repeated-field spellings and unknown ones.
FIELD_NAMES = st.sampled_from(
    [
        "id",
        "type",
        "time",
        "timestamp",
        "recipient",
        "action",
        "state",
        "code",
        "extended",
        "description",
        "tags",
        "tags[]",
        "ip",
        "useragent",
        "referer",
        "original",
        "envelope",
        "mailfrom",
        "rcptto",
        "emailfrom",
        "mime",
        "x-unknown",
        "",
        "Recipient",
        "recipient[]",
        "a" * 80,
    ]
)
#: A piece repeated into a huge value: ASCII, multibyte, NUL, percent signs, separators.
HUGE = st.tuples(
    st.sampled_from(["x", "é", "\x00", "%", "\U0001f4e7", "a@b.example;", '"', "\r\n", "\u202e"]),
    st.integers(min_value=1, max_value=12_000),
).map(lambda piece: piece[0] * piece[1])
QUOTES_AND_NEWLINES = st.sampled_from(
    ['"', "'", '\\"', "\n", "\r\n", "\r", "a\nb", '"; drop', "\t", " \u00a0 ", "\ufeff", ""]
)
VALUES = st.one_of(
    ODD_TEXT,
    QUOTES_AND_NEWLINES,
    HUGE,
    st.sampled_from(
        ["550", "250", "999", "5.1.1", "9.9.9", "1709294400", "-1", "1e9", "2024-03-01 12:00:00"]
    ),
    st.sampled_from([kind.value for kind in Kind] + ["failures", "FAILURE", "bogus"]),
)
BROKEN_MIME = st.lists(st.one_of(MIME_PIECES, st.binary(max_size=16)), max_size=30).map(
    lambda pieces: b"".join(pieces).decode("utf-8", "surrogateescape")
)
LOCAL_PARTS = st.sampled_from(["john", "a.b+c", '"q u"', "x" * 70, "\u202ejohn", ""])
DOMAINS = st.one_of(
    st.integers(min_value=0, max_value=400).map(lambda n: f"d{n}.fuzz.example"),
    st.sampled_from(
        [
            "gmail.com",
            "GMAIL.COM.",
            "outlook.com",
            "xn--ls8h.example",
            "\U0001f4e7.example",
            "b\u0301.example",
            "[192.0.2.1]",
            "localhost",
            "-bad-.example",
            "a..b",
            "",
        ]
    ),
)


@st.composite
def event_fields(draw: st.DrawFn) -> tuple[Kind, list[tuple[str, str]]]:
    """A realistic event of a drawn kind (benchmarks/traffic.py), then mutated: fields set to
    odd or huge values, dropped, repeated, or added."""
    kind = draw(st.sampled_from(list(Kind)))
    traffic = Traffic(seed=draw(st.integers(min_value=0, max_value=1000)))
    recipient = f"{draw(LOCAL_PARTS)}@{draw(DOMAINS)}"
    make: dict[Kind, Callable[[], tuple[str, dict[str, str]]]] = {
        Kind.FAILURE: traffic.failure,
        Kind.DELIVERY: traffic.delivery,
        Kind.OPEN: traffic.open,
        Kind.CLICK: traffic.click,
        Kind.BOUNCE: traffic.bounce,
        Kind.ABUSE: traffic.abuse,
    }
    _, fields = make[kind]()
    if "recipient" in fields:
        fields["recipient"] = recipient
    if "mime" in fields:
        fields["mime"] = draw(
            st.one_of(
                st.just(dsn(recipient) if kind is Kind.BOUNCE else arf(recipient, "n@s.example")),
                BROKEN_MIME,
                # Large enough to be decoded and read in the worker threads.
                st.integers(min_value=300, max_value=600).map(
                    lambda lines: dsn(recipient) + "X-Pad: padding padding padding\r\n" * lines
                ),
            )
        )
    pairs = list(fields.items())
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        action = draw(st.sampled_from(["set", "drop", "add"]))
        name = draw(FIELD_NAMES)
        value = draw(st.one_of(VALUES, BROKEN_MIME) if name == "mime" else VALUES)
        if action == "set":
            pairs = [(n, value if n == name else v) for n, v in pairs]
        elif action == "drop":
            pairs = [(n, v) for n, v in pairs if n != name]
        else:
            pairs.insert(draw(st.integers(min_value=0, max_value=len(pairs))), (name, value))
    return kind, pairs


def _quoted(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{_quoted(n)}={_quoted(v)}" for n, v in pairs).encode()


def _json(pairs: list[tuple[str, str]], shape: str) -> bytes:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:  # a repeated field becomes a list
            held = document[name]
            document[name] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            document[name] = value
    if shape == "array":
        text = json.dumps([document])
    elif shape == "truncated":
        text = json.dumps(document)[: max(1, len(json.dumps(document)) // 2)]
    else:
        text = json.dumps(document, ensure_ascii=shape == "ascii")
    return text.encode("utf-8", "surrogatepass")


def _multipart(pairs: list[tuple[str, str]], part_headers: list[str], closed: bool) -> bytes:
    body = b""
    for index, (name, value) in enumerate(pairs):
        extra = part_headers[index % len(part_headers)] if part_headers else ""
        body += (
            f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n{extra}\r\n'.encode(
                "utf-8", "surrogatepass"
            )
            + value.encode("utf-8", "surrogatepass")
            + b"\r\n"
        )
    return body + (b"--B--\r\n" if closed else b"")


PART_HEADERS = st.lists(
    st.sampled_from(
        [
            "",
            "Content-Type: text/plain; charset=latin-1\r\n",
            "Content-Type: text/plain; charset=utf-16\r\n",
            "Content-Type: text/plain; charset=x-unknown\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            'Content-Disposition: form-data; name="mime"; filename="b.eml"\r\n',
        ]
    ),
    max_size=3,
)
ODD_CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "text/plain",
            "",
            "*/*",
            "application/octet-stream",
            "APPLICATION/JSON",
            "application/json;;;",
            "application/json; charset",
            "application/json; charset=utf-16",
            "application/vnd.smtpeter+json",
            "application/x-www-form-urlencoded; charset=",
            'application/x-www-form-urlencoded; charset="utf-8"',
            "multipart/form-data",
            "multipart/form-data; boundary=",
            'multipart/form-data; boundary="a b"',
            "multipart/mixed; boundary=B",
            'x/y; a="\\""',
            "application/json\x00",
        ]
    ),
    CHARSET_NAMES.map(lambda charset: f"application/x-www-form-urlencoded; charset={charset}"),
    ODD_TEXT.map(lambda text: f"application/json; p={text}"),
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[Kind, list[str], bytes, str | None]:
    """(the event's kind, Content-Type values, body, Content-Encoding): an event in one of
    the encodings, with the matching type or an odd one, or bytes that are no encoding."""
    kind, pairs = draw(event_fields())
    encoding = draw(st.sampled_from(["form", "form", "json", "multipart", "raw", "empty"]))
    body: bytes
    if encoding == "form":
        body, content_type = _form(pairs), "application/x-www-form-urlencoded"
        if draw(st.booleans()):
            content_type += f"; charset={draw(CHARSET_NAMES)}"
    elif encoding == "json":
        shape = draw(st.sampled_from(["object", "ascii", "array", "truncated"]))
        body, content_type = _json(pairs, shape), "application/json"
    elif encoding == "multipart":
        body = _multipart(pairs, draw(PART_HEADERS), closed=draw(st.booleans()))
        content_type = "multipart/form-data; boundary=B"
    elif encoding == "raw":
        body, content_type = draw(st.binary(max_size=256)), "application/x-www-form-urlencoded"
    else:
        body, content_type = b"", "application/json"
    content_types = [content_type]
    match draw(st.sampled_from(["matching"] * 6 + ["odd", "odd", "none", "twice"])):
        case "odd":
            content_types = [draw(ODD_CONTENT_TYPES)]
        case "none":
            content_types = []
        case "twice":
            content_types = [content_type, draw(ODD_CONTENT_TYPES)]
    content_encoding = draw(st.sampled_from([None] * 8 + ["gzip", "deflate", "br", "bogus"]))
    if content_encoding in ("gzip", "deflate") and draw(st.integers(0, 3)):
        # Mostly really compressed, now and then not (a body that does not decompress).
        if draw(st.booleans()):  # a compression bomb for the small body limit
            body = b"recipient=a%40b.example&x=" + b"0" * 200_000
        body = gzip.compress(body) if content_encoding == "gzip" else zlib.compress(body)
    return kind, content_types, body, content_encoding


#: Paths a webhook kind is posted to (with {token} for token mode's secret segment).
WEBHOOK_PATHS = st.sampled_from([DISPATCH_PATH, *KIND_PATHS, *(p + "/" for p in KIND_PATHS)])
OTHER_PATHS = st.one_of(
    st.sampled_from(
        [
            "/metrics",
            "/healthz",
            "/readyz",
            "/",
            "/smtpeter-fuzz.txt",
            "/webhooks/unknown",
            "/webhooks/failures/extra",
            "//webhooks",
            "/webhooks%2Ffailures",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/favicon.ico",
            "/metrics?name[]=x",
            "*",
            "http://exporter/webhooks/failures",
        ]
    ),
    ODD_TEXT.map(lambda text: "/" + _quoted(text)),
    ODD_TEXT.map(lambda text: f"/webhooks/failures?{_quoted(text)}={_quoted(text)}"),
)
METHODS = st.sampled_from(
    ["POST"] * 30 + ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "post"]
)
#: Header values a hostile client may send: odd text (a bare CR or LF, which would end the
#: header early, is covered by the raw-socket tests; here it is folded), and long values.
PRINTABLE_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
HEADER_TEXT = st.one_of(
    PRINTABLE_HEADER_TEXT,
    PRINTABLE_HEADER_TEXT,
    PRINTABLE_HEADER_TEXT,
    ODD_TEXT.map(lambda text: re.sub(r"\r\n|\r|\n", "\r\n ", text)),
    st.integers(min_value=1, max_value=6000).map(lambda n: "v" * n),
    QUOTES_AND_NEWLINES.map(lambda text: re.sub(r"\r\n|\r|\n", "\r\n\t", text)),
)
REQUEST_IDS = st.sampled_from(["fuzz-1", "a" * 128, "a" * 129, "id with spaces", "", "%00", "ünï"])
AUTHORIZATIONS = st.one_of(
    st.sampled_from(
        [
            "Basic " + base64.b64encode(f"smtpeter:{TOKEN}".encode()).decode(),
            "Basic " + base64.b64encode(b"smtpeter:wrong").decode(),
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
            "Basic ####",
            "Basic",
            "Bearer abc",
            "basic " + base64.b64encode(f":{TOKEN}".encode()).decode(),
        ]
    ),
    HEADER_TEXT.map(lambda text: f"Basic {text}"),
)
SIGNATURE_VALUES = st.one_of(
    st.sampled_from(
        [
            (
                'keyId="one._domainkey.copernica.com",algorithm="rsa-sha256",headers="date",'
                'signature="AAAA"'
            ),
            (
                'keyId="evil.example",headers="(request-target) host date x-copernica-id digest",'
                'signature="AAAA"'
            ),
            "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "MD5=1B2M2Y8AsgTpgAmY7PhCfg==",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            COPERNICA_ID,
            COPERNICA_ID + " ",
            "environment-1234",
            "nonce-1",
        ]
    ),
    PRINTABLE_HEADER_TEXT,
)


@st.composite
def other_headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    """X-Request-Id, Authorization, signature headers, Expect and any other, each or not;
    in one request of three their values may be anything, else printable ASCII."""
    text = draw(st.sampled_from([HEADER_TEXT, PRINTABLE_HEADER_TEXT, PRINTABLE_HEADER_TEXT]))
    headers: list[tuple[str, str]] = []
    if draw(st.booleans()):
        headers.append(("X-Request-Id", draw(st.one_of(REQUEST_IDS, text))))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        headers.append(("Authorization", draw(st.one_of(AUTHORIZATIONS, text))))
    if draw(st.integers(min_value=0, max_value=2)) == 0:
        names = draw(st.lists(st.sampled_from(SIGNATURE_HEADERS), min_size=1, max_size=3))
        headers.extend((name, draw(st.one_of(SIGNATURE_VALUES, text))) for name in names)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        headers.append(("Expect", "100-continue"))
    if draw(st.integers(min_value=0, max_value=2)) == 0:
        name = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True))
        headers.append((name, draw(text)))
    return headers


@dataclass(frozen=True)
class Draft:
    """A request before the test adds Host, Content-Length and, in signature mode, a signature."""

    method: str
    path: str
    content_types: tuple[str, ...]
    content_encoding: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes


@st.composite
def drafts(draw: st.DrawFn, *, token_paths: bool = False) -> Draft:
    method = draw(METHODS)
    kind, content_types, body, content_encoding = draw(bodies())
    # Mostly where the event belongs, so that many are accepted; else anywhere.
    path = draw(
        st.sampled_from([PATH_OF_KIND[kind], PATH_OF_KIND[kind], DISPATCH_PATH, ""])
    ) or draw(st.one_of(WEBHOOK_PATHS, OTHER_PATHS))
    if token_paths and path.startswith("/webhooks") and draw(st.booleans()):
        segment = draw(st.one_of(st.just(TOKEN), st.just("wrong"), ODD_TEXT.map(_quoted)))
        path = f"/{segment}{path}"
    if method in ("GET", "HEAD") and draw(st.booleans()):
        body, content_types = b"", []
    return Draft(
        method=method,
        path=path,
        content_types=tuple(content_types),
        content_encoding=content_encoding,
        headers=tuple(draw(other_headers())),
        body=body,
    )


# --- The exporter under test ---------------------------------------------------------------------


@dataclass
class Fuzzed:
    """A running exporter, a connection to it, and what it was asked and answered."""

    process: Running
    connection: Connection
    #: The exporter's log, read through a file description of its own (reading must not
    #: move the offset the process writes at).
    log: IO[bytes]
    statuses: Counter[int] = field(default_factory=Counter)
    #: Events answered "accepted" (a retry of one is answered "duplicate").
    accepted: int = 0
    #: The end of the log read so far that is not a whole line yet.
    _partial: bytes = b""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.process.port}"

    def request(self, draft: Draft, *, extra: tuple[tuple[str, str], ...] = ()) -> Request:
        """``draft`` as it is sent: Host, its headers, and a Content-Length for a body."""
        headers = [("Host", self.host)]
        headers += [("Content-Type", value) for value in draft.content_types]
        if draft.content_encoding is not None:
            headers.append(("Content-Encoding", draft.content_encoding))
        headers += [*draft.headers, *extra]
        if draft.body or draft.method not in ("GET", "HEAD"):
            headers.append(("Content-Length", str(len(draft.body))))
        return Request(draft.method, draft.path, tuple(headers), draft.body)

    def send(self, request: Request) -> Answer:
        """Send ``request`` and check what every answer must be; returns the answer."""
        try:
            answer = self.connection.send(request)
        except OSError as exc:
            pytest.fail(f"no answer ({type(exc).__name__}: {exc}) to {request!r}")
        except http.client.HTTPException as exc:
            pytest.fail(f"no valid answer ({type(exc).__name__}) to {request!r}")
        self.statuses[answer.status] += 1
        check_answer(request, answer)
        if answer.status == 200 and b'"accepted"' in answer.body and _routed(request.target):
            self.accepted += 1
        self.check_log()
        return answer

    def check_log(self) -> None:
        """The lines logged since the last check: JSON, none an error, the process alive."""
        self.check_new_lines()
        assert self.process.process.poll() is None, "the exporter exited"

    def check_new_lines(self, *, last: bool = False) -> None:
        """The whole lines logged since the last check (a buffered log writes in chunks);
        ``last`` when the process has exited and the log must end with a whole line."""
        *lines, self._partial = (self._partial + self.log.read()).split(b"\n")
        for line in lines:
            check_log_line(line)
        assert not (last and self._partial), f"the log ends in a partial line: {self._partial!r}"


@contextlib.contextmanager
def fuzzed(**env: str) -> Iterator[Fuzzed]:
    with (
        running(
            open_files=None,
            metrics_listener=False,
            SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT="2",
            SMTPETER_EXPORTER_METRICS_DOMAIN_LIMIT=str(DOMAIN_LIMIT),
            **env,
        ) as process,
        Path(f"/proc/self/fd/{process.output.fileno()}").open("rb") as log,
    ):
        target = Fuzzed(process, Connection(process.port), log)
        try:
            yield target
        finally:
            target.connection.close()


def check_answer(request: Request, answer: Answer) -> None:
    assert answer.status < 500, f"{answer.status} {answer.body!r} for {request!r}"
    if answer.status >= 400 and request.method != "HEAD":
        assert answer.headers.get_content_type() == "application/json", request
        document = answer.json()
        assert isinstance(document.get("error"), str), (answer.body, request)
        assert document["error"], request
    sent = request.header("X-Request-Id")
    if sent is not None:
        sent = sent.strip(" \t")  # the optional whitespace around a header value
    echoed = answer.headers.get("X-Request-Id")
    if echoed is not None:
        if sent is not None and _PLAIN_REQUEST_ID.fullmatch(sent):
            assert echoed == sent, request
        else:
            assert _GENERATED_REQUEST_ID.fullmatch(echoed), (echoed, request)
    if answer.status == 200 and request.method == "POST" and _routed(request.target):
        document = answer.json()
        assert document["status"] in ("accepted", "duplicate"), answer.body
        assert document["kind"] in {kind.value for kind in Kind}, answer.body


def check_log_line(line: bytes) -> None:
    try:
        entry = json.loads(line)
    except ValueError:  # a traceback printed to stderr, say
        pytest.fail(f"a log line is not JSON: {line!r}")
    if entry.get("event") == "internal_error" or entry.get("level") in ("error", "critical"):
        pytest.fail(f"an error was logged: {_described(entry)}")


def _described(entry: dict[str, Any]) -> str:
    """A log line with its traceback shortened to one line per frame."""
    stacks = entry.pop("exception", None) or []
    frames = [
        f"{stack['exc_type']}: "
        + " <- ".join(
            f"{f['filename'].rsplit('/', 1)[-1]}:{f['lineno']} {f['name']}"
            for f in reversed(stack.get("frames", []))
        )
        for stack in stacks
        if isinstance(stack, dict)
    ]
    return f"{json.dumps(entry)} {' | '.join(frames)}"


def _routed(target: str) -> bool:
    """Whether ``target`` names a webhook route (with a path segment in front: token mode's)."""
    path = target.partition("?")[0]
    match = _WEBHOOK_ROUTE.fullmatch(path)
    return match is not None and match[1] in (DISPATCH_PATH, *KIND_PATHS)


def top_up(target: Fuzzed, authorize: Callable[[Draft], Request]) -> None:
    """Post valid failures for more new domains than the cap, each accepted."""
    for n in range(TOP_UP_DOMAINS):
        fields = {**_valid_failure(), "recipient": f"top-up@t{n}.fuzz.example"}
        draft = Draft(
            method="POST",
            path="/webhooks/failures",
            content_types=("application/x-www-form-urlencoded",),
            content_encoding=None,
            headers=(),
            body=urllib.parse.urlencode(fields).encode(),
        )
        answer = target.send(authorize(draft))
        assert answer.status == 200, answer.body


def _valid_failure() -> dict[str, str]:
    _, fields = Traffic(seed=3).failure()
    return fields


def check_after_the_run(target: Fuzzed) -> None:
    """/metrics passes promtool and stays within the series budget; the log matches the
    counters; the process stops cleanly."""
    promtool = require_tool("promtool")
    answer = target.send(
        Request("GET", "/metrics", (("Host", target.host), ("Accept", "text/plain")), b"")
    )
    assert answer.status == 200
    result = subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=answer.body,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()
    series, accepted, overflowed = 0, 0, 0.0
    for family in text_string_to_metric_families(answer.body.decode()):
        if family.name.startswith("smtpeter_"):
            series += len(family.samples)
        for sample in family.samples:
            if sample.name == "smtpeter_webhook_requests_total":
                accepted += int(sample.value) if sample.labels["outcome"] == "accepted" else 0
            elif sample.name == "smtpeter_domain_label_overflow_total":
                overflowed = sample.value
    budget = measure(DOMAIN_LIMIT)
    print(f"\n{sum(target.statuses.values())} requests: {dict(sorted(target.statuses.items()))}")
    print(f"{target.accepted} events accepted while fuzzing")
    print(f"series {series} of at most {budget.worst_case}; {accepted} events accepted")
    assert overflowed > 0, "the domain cap was never reached"
    assert series <= budget.worst_case
    target.connection.close()
    code, lines = target.process.stop()
    assert code == 0
    target.check_new_lines(last=True)
    events = [line for line in lines if "kind" in line and line["event"] == line["kind"]]
    assert len(events) == accepted


def check_spread(target: Fuzzed) -> None:
    """The generated requests were recorded as events and refused alike."""
    assert target.accepted > 0, target.statuses
    assert sum(n for status, n in target.statuses.items() if 400 <= status < 500) > 0


# --- The tests -----------------------------------------------------------------------------------


def test_unauthenticated_exporter_answers_any_request_to_any_endpoint_without_a_5xx(
    tmp_path: Path,
) -> None:
    verification = tmp_path / "smtpeter-fuzz.txt"
    verification.write_text("smtpeter-verification\n")
    with fuzzed(
        SMTPETER_EXPORTER_WEB_MAX_REQUEST_BYTES=str(SMALL_BODY_LIMIT),
        SMTPETER_EXPORTER_WEB_ACCESS_LOG="true",
        SMTPETER_EXPORTER_SMTPETER_VERIFICATION_FILE=str(verification),
    ) as target:

        @FUZZ_SETTINGS
        @given(draft=drafts())
        def fuzz(draft: Draft) -> None:
            target.send(target.request(draft))

        fuzz()
        check_spread(target)
        top_up(target, target.request)
        check_after_the_run(target)


#: Replacements that spoil a signature header (a value equal to the real one would not).
SPOILERS = SIGNATURE_VALUES.filter(lambda value: value.strip() != COPERNICA_ID)


def test_signature_mode_answers_signed_spoiled_and_unsigned_requests_without_a_5xx(
    tmp_path: Path,
) -> None:
    key = new_key("fuzz", seed=7)
    pem = tmp_path / "smtpeter.pem"
    pem.write_bytes(key.public_pem())
    with fuzzed(
        SMTPETER_EXPORTER_SMTPETER_COPERNICA_ID=COPERNICA_ID,
        SMTPETER_EXPORTER_SMTPETER_PUBLIC_KEY_FILE=str(pem),
        SMTPETER_EXPORTER_LOG_RECIPIENT="domain",
    ) as target:

        def signed(draft: Draft) -> Request:
            """``draft`` signed as SMTPeter signs, over Content-Type too when it is plain."""
            unsigned = replace(
                draft, headers=tuple(h for h in draft.headers if h[0] not in SIGNATURE_HEADERS)
            )
            headers = {"X-Copernica-ID": COPERNICA_ID}
            covered = [*MINIMUM, "x-nonce"]
            if len(draft.content_types) == 1 and _plain(draft.content_types[0]):
                headers["Content-Type"] = draft.content_types[0]
                covered.append("content-type")
            out = sign(
                draft.method,
                f"http://{target.host}{draft.path}",
                draft.body,
                headers,
                key=key.private,
                key_id=key.key_id,
                covered=covered,
            )
            added = ("Host", "Content-Length", "Content-Type")
            return target.request(
                unsigned, extra=tuple((n, v) for n, v in out.items() if n not in added)
            )

        @FUZZ_SETTINGS
        @given(
            draft=drafts(),
            how=st.sampled_from(["signed", "signed", "unsigned", "spoiled"]),
            spoiling=st.tuples(
                st.sampled_from(SIGNATURE_HEADERS),
                st.sampled_from(["drop", "replace", "repeat"]),
                SPOILERS,
            ),
            replay=st.booleans(),
        )
        def fuzz(draft: Draft, how: str, spoiling: tuple[str, str, str], replay: bool) -> None:
            if how == "unsigned":
                target.send(target.request(draft))
                return
            request = signed(draft)
            if how == "spoiled":
                spoiled, spoil, value = spoiling
                headers = [h for h in request.headers if spoil != "drop" or h[0] != spoiled]
                if spoil == "replace":
                    headers = [(n, value if n == spoiled else v) for n, v in headers]
                elif spoil == "repeat":
                    headers.append((spoiled, value))
                request = replace(request, headers=tuple(headers))
            answer = target.send(request)
            if draft.method != "POST" or not _routed(draft.path):
                return
            if how == "spoiled":
                assert answer.status != 200, f"a spoiled signature was accepted: {request!r}"
            # A signature covers the body as sent; the exporter hashes it decompressed.
            elif draft.content_encoding is None:
                assert answer.status != 401, f"{answer.body!r} for {request!r}"
            if how == "signed" and replay and answer.status == 200:
                again = target.send(request)
                assert again.status == 401, f"a replayed request got {again.status}"

        fuzz()
        check_spread(target)
        top_up(target, signed)
        assert target.statuses[401] > 0
        check_after_the_run(target)


def test_token_mode_answers_right_wrong_and_odd_tokens_without_a_5xx() -> None:
    right_basic = "Basic " + base64.b64encode(f"smtpeter:{TOKEN}".encode()).decode()
    with fuzzed(
        SMTPETER_EXPORTER_AUTH_MODE="token",
        SMTPETER_EXPORTER_AUTH_TOKEN=TOKEN,
        SMTPETER_EXPORTER_LOG_RECIPIENT="hash",
        SMTPETER_EXPORTER_LOG_BUFFER_LINES="10000",
    ) as target:

        @FUZZ_SETTINGS
        @given(draft=drafts(token_paths=True), basic=st.booleans())
        def fuzz(draft: Draft, basic: bool) -> None:
            extra = (("Authorization", right_basic),) if basic else ()
            request = target.request(draft, extra=extra)
            answer = target.send(request)
            if draft.method != "POST" or not _routed(draft.path):
                return
            segment = _WEBHOOK_ROUTE.fullmatch(draft.path.partition("?")[0])
            assert segment is not None
            in_path = draft.path[: segment.start(1)].lstrip("/") or None
            given_token = in_path if in_path is not None else _basic_password(request)
            if given_token is not None and urllib.parse.unquote(given_token) == TOKEN:
                assert answer.status != 401, f"{answer.body!r} for {request!r}"
            else:
                assert answer.status != 200, f"a wrong token was accepted: {request!r}"

        fuzz()
        check_spread(target)
        top_up(target, lambda draft: target.request(draft, extra=(("Authorization", right_basic),)))
        assert target.statuses[401] > 0
        check_after_the_run(target)


def _plain(value: str) -> bool:
    """Printable ASCII: a header value that reaches the exporter exactly as it was signed."""
    return value.isascii() and value.isprintable()


def _basic_password(request: Request) -> str | None:
    """The password of the first Authorization header when it is HTTP Basic, else None."""
    authorization = request.header("Authorization")
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


# --- What the fuzzing found ----------------------------------------------------------------------


def _answer(sock: socket.socket, method: str = "GET") -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    response.read()
    return response


def _errors(lines: list[dict[str, Any]]) -> list[str]:
    return [_described(line) for line in lines if line.get("level") in ("error", "critical")]


@pytest.mark.parametrize("target", [b"*", b"/\xc3\xa9"])
def test_access_log_records_a_request_the_http_parser_refused(target: bytes) -> None:
    with running(SMTPETER_EXPORTER_WEB_ACCESS_LOG="true") as exporter:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: exporter\r\n\r\n")
            response = _answer(sock)
        code, lines = exporter.stop()
    assert response.status == 400
    assert code == 0
    assert _errors(lines) == []
    assert [line for line in lines if line["event"] == "http_request" and line["status"] == 400]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/webhooks/failures", "application/x-www-form-urlencoded"),
        ("/webhooks/failures", "text/plain"),
        ("/nothing-here", "application/x-www-form-urlencoded"),
    ],
)
def test_a_broken_compressed_body_is_refused_without_an_error_and_a_reset(
    path: str, content_type: str
) -> None:
    body = b"recipient=this-is-not-gzip"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: exporter\r\nContent-Type: {content_type}\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with running() as exporter:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
            sock.sendall(request)
            refused = _answer(sock, "POST")
            # A keep-alive answer promises the connection can take the next request.
            usable = refused.will_close
            if not usable:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: exporter\r\n\r\n")
                    usable = _answer(sock).status == 200
        code, lines = exporter.stop()
    assert 400 <= refused.status < 500
    assert usable, "the connection was closed after a keep-alive answer"
    assert code == 0
    assert _errors(lines) == []
