# One image for every service of the platform; the Kubernetes manifests pick the
# service with the container args (`otc rfq-service`, `otc order-core`, ...).
#
#   docker build -t otc-rfq:latest .
#   docker run --rm otc-rfq:latest --help

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Stage 1: build the package and all its dependencies into a virtualenv.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for dependencies that ship no wheel for the target
# architecture; this stage is thrown away, so it never reaches the runtime image.
# (Unpinned on purpose: the distro's current toolchain is all that is needed.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# The venv lives at the same path in both stages: its scripts carry absolute
# shebangs, so it must not move.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --upgrade pip setuptools wheel
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
# A regular (non-editable) install: the runtime stage needs no source tree.
RUN pip install . \
    && python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------------------
# Stage 2: the runtime image, just Python, the venv and an unprivileged user.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="otc-rfq" \
      org.opencontainers.image.description="OTC request-for-quote platform: all services in one image" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid so Kubernetes `runAsNonRoot` can verify it and
# `runAsUser: 10001` matches the owner of the home directory.
RUN groupadd --system --gid 10001 otc \
    && useradd --system --uid 10001 --gid otc --home-dir /home/otc --create-home \
       --shell /usr/sbin/nologin otc

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/otc \
    OTC_STATE_DIR=/tmp/otc

WORKDIR /home/otc
USER 10001:10001

# HTTP API (rfq-service), ops/metrics endpoint, risk-limits gRPC.
EXPOSE 8000 9100 50051

ENTRYPOINT ["otc"]
CMD ["--help"]
