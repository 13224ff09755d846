# Web server and worker image: python slim + ffmpeg + nginx (the front scripts/run.sh starts) + gunicorn.
# docker run -p 8000:8000 IMAGE                (web + both django-q2 clusters, like scripts/run.sh)
# Web size: WEB_WORKERS (default 1) x WEB_THREADS (default 32); README, "Sizing the web server".
# docker run -e Q_CLUSTER_NAME=transcode IMAGE python manage.py qcluster   (one more transcode cluster)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VAR_DIR=/app/var HOST=0.0.0.0 PORT=8000
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg nginx \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY . .
# bootstrap.sh skips pip when this stamp matches the requirements files.
RUN touch "/app/.venv/.installed-$(cat requirements*.txt constraints.txt | sha256sum | cut -c1-16)-requirements.txt" \
    && useradd --create-home --uid 10001 app && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["bash", "scripts/run.sh"]
