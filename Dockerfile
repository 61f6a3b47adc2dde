# smtpeter-exporter's container image.
#
#   make image                      # or: docker build -t smtpeter-exporter .
#   docker run --rm -p 10587:10587 smtpeter-exporter
#
# BASE is any Debian-like image. The default, the official slim Python image, brings its own
# Python; a plain Debian base (such as one made with debootstrap, which the tests use) gets
# Debian's python3 from apt instead. Both stages below start from the same base, so the
# virtual environment built in one runs unchanged in the other.
#
# Behind a TLS-inspecting proxy, give pip the proxy's CA bundle as a build secret:
#   podman build --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt .
# (BuildKit: the same flag.) Without the secret, pip uses its own CA bundle.
ARG BASE=docker.io/library/python:3.11-slim-bookworm

# --- python: the base with a Python 3.11 interpreter --------------------------------------
FROM ${BASE} AS python
SHELL ["/bin/sh", "-eu", "-c"]
# Debian's packages come with the distribution; their versions are pinned by the base.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \
    fi; \
    python3 -c 'import sys; assert sys.version_info >= (3, 11), sys.version'

# --- build: a virtual environment holding the service and its dependencies ---------------
FROM python AS build
# hadolint ignore=DL3008
RUN if ! python3 -c 'import ensurepip' 2>/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
    fi; \
    python3 -m venv /opt/smtpeter-exporter
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120
COPY pyproject.toml README.md /src/
COPY exporter /src/exporter
# Every dependency has a binary wheel for CPython 3.11 on glibc, so nothing is compiled
# and no compiler is needed; the project itself is pure Python (built by hatchling). The
# uvloop extra puts the service on libuv's event loop (README, "Ingest").
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    /opt/smtpeter-exporter/bin/pip install --only-binary=:all: --no-binary=smtpeter-exporter \
        '/src[uvloop]'; \
    /opt/smtpeter-exporter/bin/pip uninstall --yes pip setuptools

# --- runtime: the interpreter, the virtual environment and nothing else -------------------
FROM python AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="smtpeter-exporter" \
      org.opencontainers.image.description="Receives SMTPeter webhooks; exports Prometheus metrics and JSON log lines" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/smtpeter-exporter/smtpeter-exporter" \
      org.opencontainers.image.documentation="https://github.com/smtpeter-exporter/smtpeter-exporter#deployment"
RUN groupadd --gid 10587 smtpeter-exporter; \
    useradd --uid 10587 --gid 10587 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin smtpeter-exporter
COPY --from=build /opt/smtpeter-exporter /opt/smtpeter-exporter
ENV PATH=/opt/smtpeter-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SMTPETER_EXPORTER_LOG_FORMAT=json
# A numeric user, so Kubernetes' runAsNonRoot can tell it is not root.
USER 10587:10587
EXPOSE 10587
# The drain (README, "Shutdown") starts on SIGTERM and takes at most
# --web.shutdown-timeout (10 s): give `docker stop` / Compose / Kubernetes a little more.
STOPSIGNAL SIGTERM
# Probes /healthz where the environment says the exporter listens: the private metrics
# listener when one is set, else the webhook listener (an empty or wildcard host is probed
# on loopback). Set the listen addresses by environment, not by flag, for it to follow.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; env = os.environ.get; address = env('SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS') or env('SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS') or ':10587'; host, _, port = address.rpartition(':'); host = host.strip('[]'); host = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1'}.get(host, host); host = f'[{host}]' if ':' in host else host; urllib.request.urlopen(f'http://{host}:{port}/healthz', timeout=4)"]
ENTRYPOINT ["smtpeter-exporter"]
