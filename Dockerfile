# One image for every service of the platform; the Kubernetes manifests pick the
# service with the container args (`otc rfq-service`, `otc order-core`, ...).
#
#   docker build -t otc-rfq:latest .
#   docker run --rm otc-rfq:latest --help

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Stage 1: build wheels for the package and every dependency, then install
# them into a virtualenv. Nothing of this stage but the virtualenv survives.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for dependencies that ship no wheel for the target
# architecture; it never reaches the runtime image.
# (Unpinned on purpose: the distro's current toolchain is all that is needed.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first: a change to the sources alone reuses this (slow) layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip wheel --wheel-dir /wheels -r requirements.txt

COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# The venv lives at the same path in both stages: its scripts carry absolute
# shebangs, so it must not move. It gets no pip of its own: the runtime image
# installs nothing.
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-index --find-links /wheels otc-rfq \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------------------
# Stage 2: the runtime image, just Python, the venv and an unprivileged user.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="otc-rfq" \
      org.opencontainers.image.description="OTC request-for-quote platform: all services in one image" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid so that Kubernetes `runAsNonRoot` can verify it
# without resolving a name, and `runAsUser: 10001` in deploy/k8s matches.
RUN groupadd --system --gid 10001 otc \
    && useradd --system --uid 10001 --gid otc --home-dir /home/otc --create-home \
       --shell /usr/sbin/nologin otc

COPY --from=build /opt/venv /opt/venv

# The root filesystem is read-only under Kubernetes: local state goes to /tmp,
# which the manifests mount as an emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/otc \
    OTC_STATE_DIR=/tmp/otc

WORKDIR /home/otc
USER 10001:10001

# HTTP API (rfq-service), ops endpoint (/healthz, /readyz, /metrics), risk-limits gRPC.
EXPOSE 8000 9100 50051

# The services handle SIGTERM themselves (drain, flush, close), so `otc` runs as
# PID 1 directly rather than under a shell that would swallow the signal.
ENTRYPOINT ["otc"]
CMD ["--help"]
