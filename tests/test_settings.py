"""Flags, environment variables and the frozen settings object."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.logs import LogFormat, RecipientMode
from exporter.settings import (
    OPTIONS,
    AuthMode,
    ListenAddress,
    Settings,
    parse_listen_address,
    parse_settings,
)


def test_defaults_with_no_flags_and_no_environment_match_the_settings_defaults() -> None:
    assert parse_settings([], {}) == Settings()


def test_every_flag_has_an_environment_variable_with_the_fixed_prefix() -> None:
    envs = {option.flag: option.env for option in OPTIONS}
    assert envs["--web.listen-address"] == "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS"
    assert envs["--smtpeter.verification-file"] == "SMTPETER_EXPORTER_SMTPETER_VERIFICATION_FILE"
    assert all(env.startswith("SMTPETER_EXPORTER_") for env in envs.values())
    assert {option.dest for option in OPTIONS} == set(Settings.__dataclass_fields__)


def test_flags_set_every_option(tmp_path: Path) -> None:
    proof = tmp_path / "smtpeter-abc.txt"
    proof.write_text("x")
    settings = parse_settings(
        [
            "--web.listen-address=127.0.0.1:9999",
            "--web.telemetry-path=/prometheus",
            "--web.max-request-bytes=2048",
            "--web.shutdown-timeout=2.5",
            "--web.access-log",
            "--log.level=debug",
            "--log.format=console",
            "--log.recipient=hash",
            "--metrics.domain-limit=7",
            f"--smtpeter.verification-file={proof}",
        ],
        {},
    )
    assert settings == Settings(
        listen_address=ListenAddress("127.0.0.1", 9999),
        telemetry_path="/prometheus",
        max_request_bytes=2048,
        shutdown_timeout=2.5,
        access_log=True,
        log_level="debug",
        log_format=LogFormat.CONSOLE,
        log_recipient=RecipientMode.HASH,
        domain_limit=7,
        verification_file=proof,
    )


def test_environment_sets_options_and_flags_win_over_it() -> None:
    environ = {
        "SMTPETER_EXPORTER_METRICS_DOMAIN_LIMIT": "3",
        "SMTPETER_EXPORTER_LOG_RECIPIENT": "domain",
        "SMTPETER_EXPORTER_WEB_ACCESS_LOG": "true",
    }
    from_env = parse_settings([], environ)
    assert (from_env.domain_limit, from_env.log_recipient, from_env.access_log) == (
        3,
        RecipientMode.DOMAIN,
        True,
    )
    assert parse_settings(["--metrics.domain-limit=9"], environ).domain_limit == 9
    assert parse_settings(["--web.access-log=false"], environ).access_log is False


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"SMTPETER_EXPORTER_METRICS_DOMAIN_LIMIT": "-1"},
            "SMTPETER_EXPORTER_METRICS_DOMAIN_LIMIT",
        ),
        ({"SMTPETER_EXPORTER_LOG_LEVEL": "loud"}, "SMTPETER_EXPORTER_LOG_LEVEL"),
        (
            {"SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": "nowhere"},
            "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS",
        ),
        ({"SMTPETER_EXPORTER_WEB_ACCESS_LOG": "maybe"}, "SMTPETER_EXPORTER_WEB_ACCESS_LOG"),
        (
            {"SMTPETER_EXPORTER_SMTPETER_VERIFICATION_FILE": "/no/such/file"},
            "SMTPETER_EXPORTER_SMTPETER_VERIFICATION_FILE",
        ),
    ],
)
def test_bad_environment_values_exit_with_a_message_naming_the_variable(
    environ: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_settings([], environ)
    assert caught.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag",
    [
        "--web.max-request-bytes=0",
        "--web.telemetry-path=metrics",
        "--log.format=xml",
        "--web.shutdown-timeout=-1",
    ],
)
def test_bad_flags_exit_with_usage(flag: str) -> None:
    with pytest.raises(SystemExit):
        parse_settings([flag], {})


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (":10587", ListenAddress("", 10587)),
        ("192.0.2.10:80", ListenAddress("192.0.2.10", 80)),
        ("localhost:1", ListenAddress("localhost", 1)),
        ("[::1]:9000", ListenAddress("::1", 9000)),
    ],
)
def test_listen_addresses(text: str, address: ListenAddress) -> None:
    assert parse_listen_address(text) == address


@pytest.mark.parametrize("text", ["10587", "host:", ":99999", "::1:80", "[::1]"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        parse_listen_address(text)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().domain_limit = 5  # type: ignore[misc]


def test_issue_7_options_parse_durations_lists_and_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    domains = tmp_path / "domains.txt"
    domains.write_text("# ours\nCorp.Example.\nbücher.example\n")
    settings = parse_settings(
        [
            "--web.metrics-listen-address=127.0.0.1:10588",
            "--web.max-connections=50",
            "--web.header-timeout=2s",
            "--web.body-timeout=1m",
            "--web.idle-timeout=500ms",
            "--auth.mode=token",
            f"--auth.token-file={token}",
            "--auth.signed-headers=(request-target), Host DATE x-nonce",
            "--auth.max-clock-skew=90",
            "--dedup.window=7d",
            "--dedup.max-entries=0",
            "--dedup.redis-url=redis://127.0.0.1:6379/0",
            f"--metrics.domains-file={domains}",
            "--log.buffer-lines=1000",
        ],
        {},
    )
    assert settings.metrics_listen_address == ListenAddress("127.0.0.1", 10588)
    assert (settings.header_timeout, settings.body_timeout, settings.idle_timeout) == (2, 60, 0.5)
    assert settings.effective_auth_mode is AuthMode.TOKEN
    assert settings.signed_headers == ("(request-target)", "host", "date", "x-nonce")
    assert (settings.max_clock_skew, settings.dedup_window) == (90, 7 * 86400)
    assert settings.listed_domains == ("corp.example", "xn--bcher-kva.example")
    assert settings.log_buffer_lines == 1000


def test_auth_mode_auto_is_signature_once_a_copernica_id_is_set() -> None:
    assert parse_settings([], {}).effective_auth_mode is AuthMode.NONE
    configured = parse_settings(["--smtpeter.copernica-id=environment_1234"], {})
    assert configured.effective_auth_mode is AuthMode.SIGNATURE


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--auth.mode=token"], "needs exactly one of --auth.token"),
        (["--auth.mode=signature"], "needs --smtpeter.copernica-id"),
        (["--auth.token=x"], "--auth.mode is none"),
        (
            ["--web.listen-address=:1", "--web.metrics-listen-address=:1"],
            "must differ from --web.listen-address",
        ),
        (["--dedup.window=forever"], "not a duration"),
        (["--dedup.redis-url=http://redis"], "not a redis://"),
    ],
)
def test_combinations_that_cannot_work_stop_at_start_naming_the_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, {})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_line_in_the_domains_file_stops_at_start_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domains = tmp_path / "domains.txt"
    domains.write_text("corp.example\nlocalhost\n")
    with pytest.raises(SystemExit):
        parse_settings([f"--metrics.domains-file={domains}"], {})
    assert f"{domains}:2" in capsys.readouterr().err
