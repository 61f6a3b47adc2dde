"""Authentication through the real app: SMTPeter's signatures (keys from a loopback DNS
server, or a pinned file), token mode, and what each refusal answers, counts and logs."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.auth import NonceStore, build_authenticator
from exporter.errors import KeyLookup
from exporter.keys import CacheLimits, DnsKeys, KeyUnavailable, UnknownKey
from exporter.metrics import Metrics
from exporter.settings import AuthMode, ListenAddress, Settings
from tests.conftest import Exporter, MakeClient
from tests.dns_server import LoopbackDns, Mode, running
from tests.signing import COPERNICA_ID, COVERED, MINIMUM, SigningKey, http_date, new_key, sign

PATH = "/webhooks/failures"
SIGNATURE_CHALLENGE = (
    'Signature realm="smtpeter-exporter",headers="(request-target) host date x-copernica-id digest"'
)
FAILURE = {
    "id": "5f1b0c2e",
    "type": "failure",
    "recipient": "john@gmail.com",
    "state": "rcpt to",
    "code": "550",
    "extended": "5.1.1",
    "description": "5.1.1 The email account that you tried to reach does not exist.",
}
ENCODINGS: dict[str, tuple[Callable[[dict[str, str]], str], str]] = {
    "json": (json.dumps, "application/json"),
    "form": (urlencode, "application/x-www-form-urlencoded"),
}


def body(encoding: str) -> tuple[bytes, str]:
    """A failure with an id of its own (so it is never taken for a retry), and its type."""
    encode, content_type = ENCODINGS[encoding]
    return encode({**FAILURE, "id": uuid.uuid4().hex}).encode(), content_type


@pytest.fixture
def dns_server() -> Iterator[LoopbackDns]:
    with running() as server:
        yield server


@pytest.fixture
def key() -> SigningKey:
    return new_key("one")


@pytest.fixture
def settings(dns_server: LoopbackDns, key: SigningKey) -> Settings:
    """Signature mode, keys looked up at the loopback DNS server, which publishes ``key``."""
    dns_server.publish(key.key_id, key.dkim_record())
    return Settings(copernica_id=COPERNICA_ID, dns_nameserver=dns_server.address)


async def start(aiohttp_client: MakeClient, settings: Settings) -> Exporter:
    """An app on other settings than the module's."""
    registry = CollectorRegistry()
    return Exporter(await aiohttp_client(create_app(settings, registry)), registry)


@dataclass
class Request:
    """A signed request about to be sent; a test may spoil it first."""

    body: bytes
    headers: dict[str, str]
    path: str = PATH

    async def send(self, exporter: Exporter) -> aiohttp.ClientResponse:
        return await exporter.post(self.path, data=self.body, headers=self.headers)


@dataclass(frozen=True)
class Signer:
    """Signs requests to one exporter with one key, in one body encoding."""

    exporter: Exporter
    key: SigningKey
    encoding: str = "json"

    def request(
        self,
        *,
        key: SigningKey | None = None,
        key_id: str | None = None,
        covered: tuple[str, ...] = COVERED,
        extra: dict[str, str] | None = None,
        url: str | None = None,
        algorithm: str | None = "rsa-sha256",
    ) -> Request:
        """A request signed with ``key`` (default: the signer's) under ``key_id``."""
        data, content_type = body(self.encoding)
        signing_key = key or self.key
        headers = sign(
            "POST",
            url or str(self.exporter.client.make_url(PATH)),
            data,
            {"Content-Type": content_type, "X-Copernica-ID": COPERNICA_ID, **(extra or {})},
            key=signing_key.private,
            key_id=key_id or signing_key.key_id,
            covered=covered,
            algorithm=algorithm,
        )
        return Request(data, headers)


def signed(exporter: Exporter, key: SigningKey, *, encoding: str = "json") -> Request:
    return Signer(exporter, key, encoding).request()


def requests_counted(exporter: Exporter, outcome: str) -> float | None:
    return exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome=outcome)


def lookups(exporter: Exporter, outcome: KeyLookup) -> float | None:
    return exporter.value("smtpeter_signing_key_lookups_total", outcome=outcome.value)


# --- signature mode: accepted ------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "form"])
async def test_signed_request_is_accepted_and_its_key_looked_up_once(
    exporter: Exporter, key: SigningKey, dns_server: LoopbackDns, encoding: str
) -> None:
    for _ in range(2):
        response = await signed(exporter, key, encoding=encoding).send(exporter)
        assert response.status == 200, await response.text()
    assert await response.json() == {"status": "accepted", "kind": "failure"}
    assert requests_counted(exporter, "accepted") == 2
    assert lookups(exporter, KeyLookup.FOUND) == 1
    assert dns_server.queries[key.key_id] == 1


async def test_signature_covering_only_the_minimum_headers_is_accepted(
    exporter: Exporter, key: SigningKey
) -> None:
    response = await Signer(exporter, key).request(covered=MINIMUM).send(exporter)
    assert response.status == 200, await response.text()


async def test_signature_header_without_commas_as_in_the_documented_example_is_accepted(
    exporter: Exporter, key: SigningKey
) -> None:
    request = signed(exporter, key)
    # What a proxy that unfolds the documented example passes on: parameters separated by
    # line breaks turned into spaces, no comma after headers="...".
    request.headers["Signature"] = request.headers["Signature"].replace('",', '"   ')
    response = await request.send(exporter)
    assert response.status == 200, await response.text()


async def test_header_names_are_matched_in_any_case(exporter: Exporter, key: SigningKey) -> None:
    covered = ("(Request-Target)", "HOST", "Date", "Content-Length", "X-Copernica-Id", "DIGEST")
    request = Signer(exporter, key).request(covered=covered)
    request.headers = {
        name.upper() if name != "Signature" else "sIGNATURE": value
        for name, value in request.headers.items()
    }
    response = await request.send(exporter)
    assert response.status == 200, await response.text()


# --- signature mode: every refusal -------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    outcome: str
    error: str
    spoil: Callable[[Signer], Request]


def _without(header: str) -> Callable[[Signer], Request]:
    def spoil(signer: Signer) -> Request:
        request = signer.request()
        del request.headers[header]
        return request

    return spoil


def _body_changed(signer: Signer) -> Request:
    request = signer.request()
    request.body = request.body.replace(b"john", b"jane")
    return request


def _covered_header_not_sent(signer: Signer) -> Request:
    request = signer.request(covered=(*COVERED, "x-extra"), extra={"X-Extra": "1"})
    del request.headers["X-Extra"]
    return request


def _malformed(signer: Signer) -> Request:
    request = signer.request()
    request.headers["Signature"] = 'keyId="one._domainkey.copernica.com"'
    return request


def _another_path(signer: Signer) -> Request:
    return signer.request(url=str(signer.exporter.client.make_url("/webhooks/deliveries")))


REFUSALS = {
    "no signature": Refusal("missing_signature", "no Signature header", _without("Signature")),
    "no digest": Refusal("missing_signature", "no Digest header", _without("Digest")),
    "no date": Refusal("missing_signature", "no Date header", _without("Date")),
    "no account": Refusal(
        "missing_signature", "no X-Copernica-ID header", _without("X-Copernica-ID")
    ),
    "another account": Refusal(
        "wrong_account",
        "X-Copernica-ID (environment-1234) is not the account",
        lambda s: s.request(extra={"X-Copernica-ID": "environment-1234"}),
    ),
    "malformed signature": Refusal("bad_signature", "no signature parameter", _malformed),
    "digest not covered": Refusal(
        "bad_signature",
        "does not cover digest",
        lambda s: s.request(covered=tuple(n for n in COVERED if n != "digest")),
    ),
    "another algorithm": Refusal(
        "bad_signature", "algorithm is not rsa-sha256", lambda s: s.request(algorithm="hmac-sha256")
    ),
    "hs2019": Refusal(
        "bad_signature", "algorithm is not rsa-sha256", lambda s: s.request(algorithm="hs2019")
    ),
    "covered header not sent": Refusal(
        "bad_signature", "x-extra is not in the request", _covered_header_not_sent
    ),
    "signed by another key": Refusal(
        "bad_signature",
        "does not verify",
        lambda s: s.request(key=new_key(seed=1), key_id=s.key.key_id),
    ),
    "signed for another path": Refusal("bad_signature", "does not verify", _another_path),
    "body changed": Refusal("digest_mismatch", "does not match the body", _body_changed),
    "md5 digest only": Refusal(
        "digest_mismatch", "no SHA-256 digest", lambda s: s.request(extra={"Digest": "MD5=AAAA"})
    ),
    "stale date": Refusal(
        "stale_date",
        "at most 60 s either way",
        lambda s: s.request(extra={"Date": http_date(time.time() - 600)}),
    ),
    "future date": Refusal(
        "stale_date",
        "at most 60 s either way",
        lambda s: s.request(extra={"Date": http_date(time.time() + 600)}),
    ),
    "not a date": Refusal(
        "stale_date", "not an HTTP date", lambda s: s.request(extra={"Date": "today"})
    ),
    "key outside copernica.com": Refusal(
        "unknown_key",
        "not a DNS name under copernica.com",
        lambda s: s.request(key_id="one._domainkey.copernica.com.example.net"),
    ),
    "key not published": Refusal(
        "unknown_key",
        "no signing key is published at nine._domainkey.copernica.com",
        lambda s: s.request(key_id="nine._domainkey.copernica.com"),
    ),
}


@pytest.mark.parametrize("encoding", ["json", "form"])
@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
async def test_each_refusal_is_a_401_saying_why_counted_under_its_outcome(
    exporter: Exporter, key: SigningKey, case: Refusal, encoding: str
) -> None:
    response = await case.spoil(Signer(exporter, key, encoding)).send(exporter)
    assert response.status == 401
    assert case.error in (await response.json())["error"]
    assert response.headers["WWW-Authenticate"] == SIGNATURE_CHALLENGE
    assert requests_counted(exporter, case.outcome) == 1
    assert requests_counted(exporter, "accepted") == 0


async def test_a_request_sent_again_with_the_same_nonce_is_refused_as_replayed(
    exporter: Exporter, key: SigningKey
) -> None:
    request = signed(exporter, key)
    assert (await request.send(exporter)).status == 200
    again = await request.send(exporter)
    assert again.status == 401
    assert (await again.json())["error"] == "this X-Nonce was already used"
    assert again.headers["WWW-Authenticate"] == SIGNATURE_CHALLENGE
    assert requests_counted(exporter, "replayed") == 1


async def test_a_forged_request_does_not_use_up_its_nonce(
    exporter: Exporter, key: SigningKey
) -> None:
    request = signed(exporter, key)
    forged = Request(request.body, {**request.headers, "Signature": _malformed_signature()})
    assert (await forged.send(exporter)).status == 401
    assert (await request.send(exporter)).status == 200


def _malformed_signature() -> str:
    return 'keyId="one._domainkey.copernica.com",signature="' + "A" * 344 + '"'


async def test_unreachable_dns_is_a_503_with_retry_after_and_counted_as_a_lookup_error(
    exporter: Exporter, key: SigningKey, dns_server: LoopbackDns
) -> None:
    dns_server.mode = Mode.SERVFAIL
    response = await signed(exporter, key).send(exporter)
    assert response.status == 503
    assert response.headers["Retry-After"] == "30"
    assert "cannot be looked up now" in (await response.json())["error"]
    assert requests_counted(exporter, "key_unavailable") == 1
    assert lookups(exporter, KeyLookup.ERROR) == 1
    assert lookups(exporter, KeyLookup.FOUND) == 0


async def test_unsigned_and_misaddressed_requests_never_reach_dns(
    exporter: Exporter, key: SigningKey, dns_server: LoopbackDns
) -> None:
    signer = Signer(exporter, key)
    for name in ("no signature", "another account", "stale date", "body changed"):
        assert (await REFUSALS[name].spoil(signer).send(exporter)).status == 401
    assert sum(dns_server.queries.values()) == 0
    assert lookups(exporter, KeyLookup.FOUND) == 0


# --- key rotation, caching and DNS trouble -----------------------------------------------


async def test_keys_rotate_through_dns_with_cached_negative_and_failing_lookups(
    exporter: Exporter, key: SigningKey, dns_server: LoopbackDns
) -> None:
    assert (await signed(exporter, key).send(exporter)).status == 200

    # The old key is withdrawn from DNS but stays cached for its TTL.
    dns_server.remove(key.key_id)
    assert (await signed(exporter, key).send(exporter)).status == 200
    assert dns_server.queries[key.key_id] == 1

    # A new keyId is fetched when first seen; the record comes split in several strings.
    two = new_key("two", seed=1)
    dns_server.publish(two.key_id, two.dkim_record(), split=100)
    assert (await signed(exporter, two).send(exporter)).status == 200
    assert dns_server.queries[two.key_id] == 1

    # An unknown keyId is asked for once; the negative answer is remembered.
    three = new_key("three", seed=2)
    for _ in range(2):
        response = await signed(exporter, three).send(exporter)
        assert response.status == 401
        assert "no signing key is published" in (await response.json())["error"]
    assert dns_server.queries[three.key_id] == 1

    # DNS goes down: a new keyId cannot be had, the cached ones keep working.
    dns_server.mode = Mode.SERVFAIL
    four = new_key("four", seed=3)
    assert (await signed(exporter, four).send(exporter)).status == 503
    assert (await signed(exporter, key).send(exporter)).status == 200
    assert (await signed(exporter, two).send(exporter)).status == 200

    assert (lookups(exporter, KeyLookup.FOUND), lookups(exporter, KeyLookup.NOT_FOUND)) == (2, 1)
    assert lookups(exporter, KeyLookup.ERROR) == 1
    assert requests_counted(exporter, "accepted") == 5


async def test_concurrent_requests_for_a_new_key_share_one_dns_query(
    exporter: Exporter, key: SigningKey, dns_server: LoopbackDns
) -> None:
    dns_server.delays[key.key_id] = 0.2
    requests = [signed(exporter, key) for _ in range(20)]
    responses = await asyncio.gather(*(request.send(exporter) for request in requests))
    assert [response.status for response in responses] == [200] * 20
    assert dns_server.queries[key.key_id] == 1
    assert lookups(exporter, KeyLookup.FOUND) == 1


async def test_a_slow_lookup_does_not_delay_requests_signed_with_a_cached_key(
    exporter: Exporter, key: SigningKey, dns_server: LoopbackDns
) -> None:
    assert (await signed(exporter, key).send(exporter)).status == 200
    slow = new_key("slow", seed=1)
    dns_server.publish(slow.key_id, slow.dkim_record())
    dns_server.delays[slow.key_id] = 1.5
    pending = asyncio.create_task(signed(exporter, slow).send(exporter))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert (await signed(exporter, key).send(exporter)).status == 200
    assert time.monotonic() - started < 0.5
    assert not pending.done()
    assert (await pending).status == 200


# --- reverse proxy, pinned key -----------------------------------------------------------


async def test_behind_a_proxy_the_public_host_and_path_are_what_is_verified(
    aiohttp_client: MakeClient, settings: Settings, key: SigningKey
) -> None:
    public = Settings(
        copernica_id=COPERNICA_ID,
        dns_nameserver=settings.dns_nameserver,
        public_url="https://hooks.example.com/smtpeter/",
    )
    exporter = await start(aiohttp_client, public)
    through_proxy = Signer(exporter, key).request(url="https://hooks.example.com/smtpeter" + PATH)
    # The proxy passes the request on with its own Host and without the /smtpeter prefix.
    through_proxy.headers["Host"] = exporter.client.make_url("/").raw_authority
    response = await through_proxy.send(exporter)
    assert response.status == 200, await response.text()
    # Signed for the address the exporter itself sees: not what SMTPeter would sign.
    direct = await signed(exporter, key).send(exporter)
    assert direct.status == 401
    assert "does not verify" in (await direct.json())["error"]


async def test_a_pinned_public_key_file_verifies_every_key_id_without_dns(
    aiohttp_client: MakeClient, dns_server: LoopbackDns, tmp_path: Path
) -> None:
    pinned = new_key("pinned", seed=4)
    pem = tmp_path / "smtpeter.pem"
    pem.write_bytes(pinned.public_pem())
    exporter = await start(
        aiohttp_client,
        Settings(
            copernica_id=COPERNICA_ID,
            public_key_file=pem,
            dns_nameserver=dns_server.address,
        ),
    )
    for key_id in ("one._domainkey.copernica.com", "two._domainkey.copernica.com"):
        response = await Signer(exporter, pinned).request(key_id=key_id).send(exporter)
        assert response.status == 200, await response.text()
    other = await signed(exporter, new_key("one")).send(exporter)
    assert other.status == 401
    assert sum(dns_server.queries.values()) == 0
    assert lookups(exporter, KeyLookup.FOUND) == 0


# --- token mode --------------------------------------------------------------------------

TOKEN = "pa55-w0rd-for-smtpeter"
BASIC_CHALLENGE = 'Basic realm="smtpeter-exporter", charset="UTF-8"'


@pytest.fixture
async def token_exporter(aiohttp_client: MakeClient) -> Exporter:
    return await start(aiohttp_client, Settings(auth_mode=AuthMode.TOKEN, auth_token=TOKEN))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("encoding", ["json", "form"])
async def test_token_in_the_path_is_accepted(token_exporter: Exporter, encoding: str) -> None:
    data, content_type = body(encoding)
    response = await token_exporter.post(
        f"/{TOKEN}{PATH}", data=data, headers={"Content-Type": content_type}
    )
    assert response.status == 200, await response.text()
    assert requests_counted(token_exporter, "accepted") == 1


@pytest.mark.parametrize("user", ["smtpeter", "", "anyone"])
async def test_token_as_the_basic_password_is_accepted_with_any_user(
    token_exporter: Exporter, user: str
) -> None:
    response = await token_exporter.post(PATH, data=FAILURE, headers=basic(user, TOKEN))
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("path", "headers", "error"),
    [
        (f"/wrong{PATH}", {}, "the token is wrong"),
        (f"/{TOKEN}x{PATH}", {}, "the token is wrong"),
        (PATH, basic("smtpeter", "wrong"), "the token is wrong"),
        (PATH, basic("smtpeter", TOKEN[:-1]), "the token is wrong"),
        (PATH, {}, "no token"),
        (PATH, {"Authorization": f"Bearer {TOKEN}"}, "not HTTP Basic"),
        (PATH, {"Authorization": "Basic !!!"}, "not HTTP Basic"),
        # The path decides when it carries a token: a right password does not save it.
        (f"/wrong{PATH}", basic("smtpeter", TOKEN), "the token is wrong"),
    ],
    ids=[
        "wrong path",
        "longer path",
        "wrong password",
        "shorter password",
        "none",
        "bearer",
        "bad basic",
        "wrong path right password",
    ],
)
async def test_wrong_or_missing_token_is_a_401_with_a_basic_challenge(
    token_exporter: Exporter, path: str, headers: dict[str, str], error: str
) -> None:
    response = await token_exporter.post(path, data=FAILURE, headers=headers)
    assert response.status == 401
    assert error in (await response.json())["error"]
    assert response.headers["WWW-Authenticate"] == BASIC_CHALLENGE
    assert requests_counted(token_exporter, "bad_token") == 1


async def test_token_is_read_from_its_file_stripped(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    exporter = await start(aiohttp_client, Settings(auth_mode=AuthMode.TOKEN, auth_token_file=path))
    assert (await exporter.post(f"/{TOKEN}{PATH}", data=FAILURE)).status == 200
    assert (await exporter.post(f"/{TOKEN}%20{PATH}", data=FAILURE)).status == 401


def test_an_empty_token_file_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    settings = Settings(auth_mode=AuthMode.TOKEN, auth_token_file=path)
    with pytest.raises(ValueError, match="is empty"):
        build_authenticator(settings, Metrics(CollectorRegistry(), domain_limit=1))


async def test_the_token_never_appears_in_a_log_line(token_exporter: Exporter) -> None:
    with structlog.testing.capture_logs() as logs:
        for path, headers in [
            (f"/{TOKEN}{PATH}", {}),
            (f"/{TOKEN}{PATH}", {"Content-Type": "text/plain"}),
            (PATH, basic("u", TOKEN)),
            (PATH, basic("u", TOKEN + "x")),
            (f"/{TOKEN[:-1]}{PATH}", {}),
        ]:
            await token_exporter.post(path, data=b"recipient=x", headers=headers)
    assert len(logs) >= 4
    assert not [line for line in logs if TOKEN[:-1] in json.dumps(line, default=str)]
    assert any(line.get("path") == f"/<token>{PATH}" for line in logs)


async def test_the_token_is_not_logged_for_a_webhook_path_that_does_not_exist(
    token_exporter: Exporter,
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await token_exporter.post(f"/{TOKEN}/webhooks/nonsense", data=FAILURE)
    assert response.status == 404
    assert logs
    assert not [line for line in logs if TOKEN in json.dumps(line, default=str)]


# --- logs and metrics --------------------------------------------------------------------


async def test_nothing_of_a_refused_body_or_its_signature_is_logged(
    exporter: Exporter, key: SigningKey
) -> None:
    secret = "marker-7f3a9c@example.org"
    data = json.dumps({**FAILURE, "recipient": secret}).encode()
    headers = sign(
        "POST",
        str(exporter.client.make_url(PATH)),
        data,
        {"Content-Type": "application/json", "X-Copernica-ID": COPERNICA_ID},
        key=new_key(seed=1).private,
        key_id=key.key_id,
    )
    signature = headers["Signature"].rsplit('signature="', 1)[1].rstrip('"')
    with structlog.testing.capture_logs() as logs:
        response = await exporter.post(PATH, data=data, headers=headers)
        tampered = await exporter.post(PATH, data=data.replace(b"john", b"jane"), headers=headers)
    assert (response.status, tampered.status) == (401, 401)
    text = json.dumps(logs, default=str)
    assert "webhook_rejected" in text
    assert secret not in text
    assert signature[:20] not in text


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("signature", {"copernica_id": COPERNICA_ID}),
        ("token", {"auth_mode": AuthMode.TOKEN, "auth_token": TOKEN}),
        ("none", {}),
    ],
)
async def test_auth_mode_gauge_names_the_mode_in_force(
    aiohttp_client: MakeClient, mode: str, options: dict[str, object]
) -> None:
    exporter = await start(aiohttp_client, Settings(**options))  # type: ignore[arg-type]
    for each in AuthMode:
        expected = 1 if each.value == mode else None
        assert exporter.value("smtpeter_auth_mode", mode=each.value) == expected
    for outcome in KeyLookup:
        assert lookups(exporter, outcome) == 0


# --- the key store on its own ------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1000.0
    outcomes: list[KeyLookup] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now


def store(dns_server: LoopbackDns, clock: Clock, **limits: float) -> DnsKeys:
    return DnsKeys(
        dns_server.address,
        on_lookup=clock.outcomes.append,
        limits=CacheLimits(**limits),  # type: ignore[arg-type]
        clock=clock,
    )


def _same(public: RSAPublicKey, key: SigningKey) -> bool:
    return public.public_numbers() == key.private.public_key().public_numbers()


async def test_a_key_is_looked_up_again_when_its_ttl_expires(dns_server: LoopbackDns) -> None:
    one, two = new_key("one"), new_key("one", seed=1)
    dns_server.publish(one.key_id, one.dkim_record(), ttl=120)
    clock = Clock()
    keys = store(dns_server, clock)
    assert (
        await keys.key(one.key_id)
    ).public_numbers() == one.private.public_key().public_numbers()
    dns_server.publish(one.key_id, two.dkim_record(), ttl=120)
    clock.now += 119
    assert (
        await keys.key(one.key_id)
    ).public_numbers() == one.private.public_key().public_numbers()
    assert dns_server.queries[one.key_id] == 1
    clock.now += 2
    assert (
        await keys.key(one.key_id)
    ).public_numbers() == two.private.public_key().public_numbers()
    assert dns_server.queries[one.key_id] == 2


@pytest.mark.parametrize(("ttl", "kept"), [(5, 60), (86400, 3600)])
async def test_ttls_are_clamped_between_a_minute_and_an_hour(
    dns_server: LoopbackDns, ttl: int, kept: int
) -> None:
    key = new_key()
    dns_server.publish(key.key_id, key.dkim_record(), ttl=ttl)
    clock = Clock()
    keys = store(dns_server, clock)
    await keys.key(key.key_id)
    clock.now += kept - 1
    await keys.key(key.key_id)
    assert dns_server.queries[key.key_id] == 1
    clock.now += 2
    await keys.key(key.key_id)
    assert dns_server.queries[key.key_id] == 2


async def test_a_negative_answer_is_remembered_briefly(dns_server: LoopbackDns) -> None:
    clock = Clock()
    keys = store(dns_server, clock, negative_ttl=60)
    name = "gone._domainkey.copernica.com"
    for _ in range(3):
        with pytest.raises(UnknownKey):
            await keys.key(name)
    assert dns_server.queries[name] == 1
    key = new_key()
    dns_server.publish(name, key.dkim_record())
    clock.now += 61
    await keys.key(name)
    assert clock.outcomes == [KeyLookup.NOT_FOUND, KeyLookup.FOUND]


async def test_a_txt_record_without_a_key_is_not_found(dns_server: LoopbackDns) -> None:
    dns_server.publish("spf._domainkey.copernica.com", "v=spf1 -all")
    clock = Clock()
    with pytest.raises(UnknownKey, match="no usable RSA key"):
        await store(dns_server, clock).key("spf._domainkey.copernica.com")
    assert clock.outcomes == [KeyLookup.NOT_FOUND]


async def test_a_lookup_that_gets_no_answer_gives_up_at_its_timeout(
    dns_server: LoopbackDns,
) -> None:
    dns_server.mode = Mode.SILENT
    clock = Clock()
    keys = store(dns_server, clock, lookup_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(KeyUnavailable):
        await keys.key("one._domainkey.copernica.com")
    assert time.monotonic() - started < 2
    assert clock.outcomes == [KeyLookup.ERROR]


async def test_an_expired_key_is_used_while_dns_fails_and_dropped_when_it_is_gone(
    dns_server: LoopbackDns,
) -> None:
    key = new_key()
    dns_server.publish(key.key_id, key.dkim_record(), ttl=60)
    clock = Clock()
    keys = store(dns_server, clock, retry_interval=30, stale_for=86400)
    await keys.key(key.key_id)
    dns_server.mode = Mode.SERVFAIL
    clock.now += 61
    await keys.key(key.key_id)
    clock.now += 10
    await keys.key(key.key_id)  # within the retry interval: no new lookup
    assert dns_server.queries[key.key_id] == 2
    clock.now += 86400
    with pytest.raises(KeyUnavailable):
        await keys.key(key.key_id)
    dns_server.mode = Mode.ANSWER
    dns_server.remove(key.key_id)
    with pytest.raises(UnknownKey):
        await keys.key(key.key_id)
    assert clock.outcomes == [
        KeyLookup.FOUND,
        KeyLookup.ERROR,
        KeyLookup.ERROR,
        KeyLookup.NOT_FOUND,
    ]


async def test_lookups_in_flight_are_bounded_and_the_excess_answered_at_once(
    dns_server: LoopbackDns,
) -> None:
    names = [f"k{i}._domainkey.copernica.com" for i in range(3)]
    for name in names:
        dns_server.delays[name] = 0.3
    keys = store(dns_server, Clock(), max_in_flight=2)
    first = [asyncio.create_task(keys.key(name)) for name in names[:2]]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(KeyUnavailable, match="too many"):
        await keys.key(names[2])
    assert time.monotonic() - started < 0.1
    for task in first:
        with pytest.raises(UnknownKey):
            await task
    assert dns_server.queries[names[2]] == 0


async def test_caches_are_bounded_and_made_up_key_ids_cannot_push_out_real_keys(
    dns_server: LoopbackDns,
) -> None:
    real = [new_key(f"real{i}", seed=i) for i in range(3)]
    for key in real:
        dns_server.publish(key.key_id, key.dkim_record())
    keys = store(dns_server, Clock(), max_keys=2, max_negative=2)
    await keys.key(real[0].key_id)
    await keys.key(real[1].key_id)
    await keys.key(real[0].key_id)  # now the most recently used
    await keys.key(real[2].key_id)  # pushes out the least recently used: real[1]
    for i in range(5):
        with pytest.raises(UnknownKey):
            await keys.key(f"fake{i}._domainkey.copernica.com")
    await keys.key(real[0].key_id)
    await keys.key(real[2].key_id)
    assert [dns_server.queries[key.key_id] for key in real] == [1, 1, 1]
    await keys.key(real[1].key_id)
    assert dns_server.queries[real[1].key_id] == 2
    # Only the last two negative answers are remembered.
    with pytest.raises(UnknownKey):
        await keys.key("fake0._domainkey.copernica.com")
    assert dns_server.queries["fake0._domainkey.copernica.com"] == 2


async def test_a_key_id_that_is_not_a_dns_name_is_refused_without_a_lookup(
    dns_server: LoopbackDns,
) -> None:
    keys = store(dns_server, Clock())
    for key_id in ("", "a..copernica.com", "x" * 64 + ".copernica.com", "a b.copernica.com"):
        with pytest.raises(UnknownKey, match="not a DNS name"):
            await keys.key(key_id)
    assert sum(dns_server.queries.values()) == 0


def test_a_nameserver_that_is_not_an_ip_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="must be an IP address"):
        DnsKeys(ListenAddress("dns.example.com", 53))


def test_nonces_are_forgotten_after_their_window_and_oldest_first_at_the_bound() -> None:
    nonces = NonceStore(window=120, max_entries=3)
    assert nonces.claim("a", now=0)
    assert not nonces.claim("a", now=119)
    assert nonces.claim("a", now=121)
    for nonce in ("b", "c", "d"):
        assert nonces.claim(nonce, now=130)
    assert len(nonces) == 3
    assert not nonces.seen("a", now=130)
    assert nonces.seen("d", now=130)
