# syntax=docker/dockerfile:1
#
# ModelMux container image.
#
#   docker build -t modelmux .
#   docker run --init -p 3000:3000 modelmux                      # serves the mock model
#   docker run --init -p 3000:3000 -v "$PWD/conf:/etc/modelmux:ro" \
#       -v modelmux-data:/var/lib/modelmux --stop-timeout 40 modelmux
#
# Configuration: /etc/modelmux/config.toml (the image ships the example, which serves the mock
# model; mount a directory with your own config.toml over /etc/modelmux). Secrets: pass the
# variables your config references as ${NAME} with -e/--env-file. If you change [server] port,
# publish that port and set MODELMUX_HEALTHCHECK_URL to match.
# SIGTERM drains in-flight requests for up to [server] drain_timeout (default 30 s): give
# `docker stop` more than that (--stop-timeout 40, compose `stop_grace_period: 40s`).

ARG PYTHON_VERSION=3.11

# --- builder: compile the native modules and collect wheels for everything -----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE-MIT LICENSE-APACHE ./
COPY _speedups/ _speedups/
COPY modelmux/ modelmux/

# MODELMUX_REQUIRE_NATIVE=1: a failed native build is an error, never a quiet pure-Python wheel.
# `pip wheel` also collects a wheel for every dependency, so the runtime stage installs offline;
# the image carries the otel, redis, jwt, postgres and tokenizers extras: a container user
# cannot add them.
RUN MODELMUX_REQUIRE_NATIVE=1 pip wheel --no-cache-dir --disable-pip-version-check \
        --wheel-dir /wheels '.[otel,redis,jwt,postgres,tokenizers]' \
    && python -c "import glob, sys, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/modelmux-*.whl')[0]).namelist(); \
sys.exit(not any(n.startswith('modelmux/_speedups/') and n.endswith('.so') for n in names))"

# --- runtime: slim Python, the wheels, an unprivileged user --------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="modelmux" \
      org.opencontainers.image.description="OpenAI-compatible AI gateway in front of many model providers" \
      org.opencontainers.image.source="https://github.com/yarenty/modelmux" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELMUX_REQUIRE_NATIVE=1 \
    MODELMUX_HEALTHCHECK_URL=http://127.0.0.1:3000/health

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index --find-links=/wheels 'modelmux[otel,redis,jwt,postgres,tokenizers]' \
    && modelmux --version | grep -F 'native ('

RUN groupadd --system --gid 10001 modelmux \
    && useradd --system --uid 10001 --gid modelmux --home-dir /var/lib/modelmux --create-home \
        --shell /usr/sbin/nologin modelmux

COPY packaging/config.toml.example /etc/modelmux/config.toml
COPY packaging/config.toml.example /etc/modelmux/config.toml.example

USER 10001:10001
WORKDIR /var/lib/modelmux
# The state directory ($HOME/.local/state/modelmux) keeps the SQLite file of keys, teams, users
# and spend: a volume, so they outlive the container (-v modelmux-data:/var/lib/modelmux).
VOLUME ["/var/lib/modelmux"]
EXPOSE 3000
STOPSIGNAL SIGTERM

# 200 from /health once the server is ready; urllib raises (exit 1) on errors and non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['MODELMUX_HEALTHCHECK_URL'], timeout=4)"]

# The example config turns API keys on: run with -e MODELMUX_MASTER_KEY=<a long random string>
# (docs/auth.md). Serving without keys on 0.0.0.0 is refused unless [auth] allow_unauthenticated.
CMD ["modelmux", "serve", "--config", "/etc/modelmux/config.toml", "--host", "0.0.0.0"]
