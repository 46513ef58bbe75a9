# syntax=docker/dockerfile:1
# Python 3.13 (security support until 2029-10). Every dependency ships cp313 manylinux wheels
# (checked with `pip install --dry-run --only-binary=:all: --python-version 3.13`), so the image
# builds without a compiler.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    DATABASE_PATH=/data/playlist_clusters.sqlite3

# tini runs as PID 1: it forwards SIGTERM (docker stop) to the bot and reaps the process pool's
# children. Without an init, the bot is PID 1 and the kernel drops signals it has no handler for.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 bot \
    && mkdir -p /data \
    && chown bot /data

WORKDIR /app

# 1. Dependencies only, read from pyproject.toml: this ~500 MB layer is rebuilt only when
#    pyproject.toml changes, not on every code change.
#    EXTRAS (build argument, e.g. "postgres"): optional dependencies to add (compose.yaml).
COPY pyproject.toml ./
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ.get('EXTRAS', '').split(',') if e]; print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. The code (small, changes often).
COPY README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
RUN pip install --no-cache-dir --no-deps .

USER bot
# The database, its WAL files, the token encryption key and the heartbeat all live here.
VOLUME ["/data"]
# Only used for the Spotify OAuth callback in web mode (PUBLIC_BASE_URL).
EXPOSE 8080
# Healthy while the running bot's event loop rewrites /data/playlist_clusters.sqlite3.heartbeat
# (every 30 s); works without web mode. Start-up (migrations, login) gets two minutes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "bot", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "bot"]
