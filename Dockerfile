# syntax=docker/dockerfile:1
#
# cloudtrail-sqs-exporter container image.
#
#   docker build -t cloudtrail-sqs-exporter:dev .
#   docker run --rm -p 10355:10355 cloudtrail-sqs-exporter:dev            # embedded demo config
#   docker run --rm -p 10355:10355 -v "$PWD/config.yaml:/etc/cloudtrail-sqs-exporter/config.yaml:ro" \
#       cloudtrail-sqs-exporter:dev run --config /etc/cloudtrail-sqs-exporter/config.yaml
#
# Stage 1 builds wheels for the package and every dependency; stage 2 installs those wheels,
# offline, into a virtualenv without pip/setuptools. The final image carries no compiler,
# no build backend and no wheel cache. tests/test_packaging.py repeats these exact steps.

ARG PYTHON_IMAGE=python:3.11-slim
# the commit the image is built from (build_info's revision label and the OCI label):
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" .
ARG REVISION=unknown

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C compiler for the project's optional accelerator (exporter/_native.c, the OTLP log encoder);
# it stays in this stage. Without it the wheel still builds, with the pure-Python encoder.
# hadolint ignore=DL3008 # the compiler's version does not change the wheel's behaviour: unpinned on purpose
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE constraints.txt ./
COPY exporter ./exporter

# The project wheel plus a wheel for every runtime dependency, at the versions pinned in
# constraints.txt (the dependencies all publish manylinux wheels; only the project compiles C).
ARG REVISION
RUN SOURCE_REVISION="${REVISION}" \
    python -m pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels .

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
ARG GID=10001
ARG REVISION
# keep VERSION equal to exporter.__version__ (tests/test_packaging.py checks); SOURCE_URL: where the
# repository lives, given at build time (--build-arg SOURCE_URL=https://...)
ARG VERSION=0.1.0
ARG SOURCE_URL=unknown

LABEL org.opencontainers.image.title="cloudtrail-sqs-exporter" \
      org.opencontainers.image.description="Prometheus metrics and OpenTelemetry logs from the Amazon SQS events in AWS CloudTrail" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The wheels are bind-mounted from the builder, so they never land in a layer of this image.
# The venv is created without pip; the base image's pip installs into it (--python) from the
# local wheels only (--no-index), then the final image has no installer inside the venv.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-index \
       --find-links /wheels /wheels/cloudtrail_sqs_exporter-*.whl \
    && groupadd --system --gid "${GID}" exporter \
    && useradd --system --uid "${UID}" --gid "${GID}" --no-create-home \
       --home-dir /var/lib/cloudtrail-sqs-exporter --shell /usr/sbin/nologin exporter \
    && install -d -o "${UID}" -g "${GID}" -m 0750 /var/lib/cloudtrail-sqs-exporter \
    && install -d -m 0755 /etc/cloudtrail-sqs-exporter

# The working directory is the writable state directory, so the default relative
# state.path (./state/cloudtrail-sqs-exporter.db) lands on the volume. No env override of
# state.path here: a mounted config file keeps full control of it.
WORKDIR /var/lib/cloudtrail-sqs-exporter
VOLUME ["/var/lib/cloudtrail-sqs-exporter"]
USER 10001:10001
EXPOSE 10355

# /healthz answers while the process is alive (readiness is /readyz); the slim image has no
# curl, so the check uses the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10355/healthz', timeout=4)"]

ENTRYPOINT ["cloudtrail-sqs-exporter"]
CMD ["run"]
