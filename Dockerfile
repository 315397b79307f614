FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FLASK_APP=wsgi

RUN useradd --create-home --uid 10001 handoff
WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install .

COPY wsgi.py gunicorn.conf.py docker-entrypoint.sh ./
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN mkdir -p /app/instance && chown handoff /app/instance

USER handoff
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["./docker-entrypoint.sh"]
