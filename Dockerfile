# Downvote: one process serving the receiver, the Slack worker and the scheduler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/downvote.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY webhooks ./webhooks
COPY storage ./storage
RUN pip install --no-cache-dir . \
    && useradd --system --create-home --uid 10001 downvote \
    && mkdir /data \
    && chown downvote /data

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["downvote", "serve", "--host", "0.0.0.0", "--port", "8000"]
