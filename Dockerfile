# syntax=docker/dockerfile:1.7
# leerid-gateway production image: multi-stage, pinned base, non-root, no build tools at run time.
# Migrations run separately from serving:
#   docker run --rm --env-file gateway.env IMAGE migrate      (a Job, before the rollout)
#   docker run     --env-file gateway.env -p 8000:8000 IMAGE  (serve; the default command)

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Every dependency ships manylinux wheels (asyncpg, uvloop, httptools, cryptography, pydantic-core,
# protobuf), so even the build stage needs no compiler; --only-binary makes a missing wheel fail loudly.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ONLY_BINARY=:all:
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-binary=leerid-gateway .

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEERID_MIGRATIONS_DIR=/app/migrations
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /app --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root alembic.ini ./
USER 10001:10001
EXPOSE 8000
# SIGTERM: /readyz turns 503 for LEERID_SHUTDOWN_DRAIN_SECONDS, then in-flight requests finish.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["leerid-gateway"]
# X-Forwarded-* are trusted only from LEERID_TRUSTED_PROXIES (the load balancers' addresses).
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
