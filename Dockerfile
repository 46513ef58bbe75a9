# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    DATABASE_PATH=/data/playlist_clusters.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 bot && mkdir -p /data && chown bot /data

USER bot
VOLUME ["/data"]
EXPOSE 8080
CMD ["python", "-m", "bot"]
