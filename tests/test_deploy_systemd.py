"""deploy/systemd/: the unit passes ``systemd-analyze verify`` without a word, its sandbox
scores as the README says, and the exporter runs under the one restriction most likely to
break a Python service (``MemoryDenyWriteExecute=``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from exporter.settings import OPTIONS
from tests.conftest import PROJECT_ROOT, free_ports, require_tool
from tests.servers import answers, servers, wait_for

SYSTEMD = PROJECT_ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "smtpeter-exporter.service"
ENV_EXAMPLE = SYSTEMD / "smtpeter-exporter.env.example"
README = PROJECT_ROOT / "README.md"
EXEC_START = "/opt/smtpeter-exporter/bin/smtpeter-exporter"
# Linux's PR_SET_MDWE with PR_MDWE_REFUSE_EXEC_GAIN: what systemd applies for
# MemoryDenyWriteExecute=yes where the kernel has it (seccomp filters the same calls before).
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    systemd_analyze = require_tool("systemd-analyze")
    settings = _settings()
    assert settings["ExecStart"] == [EXEC_START]
    # verify checks that ExecStart exists: point it at this checkout's command, and only that.
    unit = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    command = Path(sys.executable).parent / "smtpeter-exporter"
    unit.write_text(text.replace(f"ExecStart={EXEC_START}", f"ExecStart={command}"))
    result = subprocess.run(
        [systemd_analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    # It exits 0 on unknown or misspelt keys and only says so on stderr.
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_verify_would_catch_a_misspelt_key(tmp_path: Path) -> None:
    systemd_analyze = require_tool("systemd-analyze")
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text(encoding="utf-8")
        .replace(f"ExecStart={EXEC_START}", f"ExecStart={sys.executable}")
        .replace("ProtectSystem=strict", "ProtectSytem=strict")
    )
    result = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert "ProtectSytem" in result.stderr


def test_the_unit_is_hardened_and_waits_for_the_drain() -> None:
    settings = _settings()
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "MemoryDenyWriteExecute": "yes",
        "KillSignal": "SIGTERM",
    }.items():
        assert settings[key] == [value], key
    assert settings["SystemCallFilter"][0] == "@system-service"
    # systemd waits longer than the exporter's own shutdown timeout (10 s by default).
    assert int(settings["TimeoutStopSec"][0]) > 10
    assert settings["EnvironmentFile"] == ["/etc/smtpeter-exporter/smtpeter-exporter.env"]


def test_the_environment_example_names_only_real_settings() -> None:
    known = {option.env for option in OPTIONS}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        setting = line.lstrip("#")
        if re.match(r"SMTPETER_EXPORTER_\w+=", setting):
            assert setting.partition("=")[0] in known, setting


def test_readme_reports_the_exposure_systemd_analyze_gives() -> None:
    systemd_analyze = require_tool("systemd-analyze")
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", output)
    assert match, output
    score, verdict = match.groups()
    assert float(score) <= 2.0, output
    assert f"exposure level {score} ({verdict})" in README.read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_exporter_runs_with_write_execute_memory_refused(tmp_path: Path) -> None:
    [port] = free_ports(1)
    address = f"127.0.0.1:{port}"
    # Applied in the child just before exec, as systemd does; inherited by the exporter.
    wrapper = (
        "import ctypes, os, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
        "    sys.exit(3)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    probe = subprocess.run([sys.executable, "-c", wrapper, "/bin/true"], check=False)
    if probe.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 and later)")
    command = Path(sys.executable).parent / "smtpeter-exporter"
    with servers(tmp_path) as running:
        log = running.start(
            "exporter",
            [sys.executable, "-c", wrapper, str(command)],
            env={
                **os.environ,
                "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": address,
                "SMTPETER_EXPORTER_LOG_FORMAT": "json",
            },
        )
        wait_for("the exporter", lambda: answers(f"http://{address}/readyz"), 20)
        request = urllib.request.Request(
            f"http://{address}/webhooks/failures",
            data=b"recipient=john%40gmail.com&code=550&extended=5.1.1",
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            assert response.status == 200
        running.check_running()
    assert '"event": "failure"' in log.read_text(encoding="utf-8")
