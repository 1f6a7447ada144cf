# One image for the API, the worker and the one-shot migration (the command differs, see docker-compose.yml).
# The build context is an allowlist (.dockerignore) and every COPY names what it takes: a working checkout's
# .env, var/ (the development secret key and database), .venv, .git and keys never reach the image.
FROM python:3.11-slim-bookworm
# pg_dump refuses a server newer than itself, and Debian bookworm ships client 15: take the client of the
# postgres service's major version from the PostgreSQL project's apt repository (PGDG).
ARG PG_MAJOR=16
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && install -d /usr/share/postgresql-common/pgdg \
    && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
        "postgresql-client-${PG_MAJOR}" \
    && apt-get purge -y curl && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
# Nothing writes bytecode at run time (the code is read-only to the app): it is compiled below, at build time.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The dependencies' layer changes only with the runtime lock: the versions `make test` tested, hashes checked,
# wheels only (requirements-runtime.lock, written by `make lock` beside requirements.lock).
COPY requirements-runtime.lock ./
RUN pip install --require-hashes --only-binary :all: -r requirements-runtime.lock
COPY pyproject.toml ./
COPY api ./api
COPY core ./core
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
RUN pip install --no-deps . && rm -rf build ./*.egg-info && pip check
COPY policies ./policies
COPY migrations ./migrations
COPY templates ./templates
COPY deploy ./deploy
COPY alembic.ini worker.py cli.py ./
# The code belongs to root and is read-only to everyone else; the app user may write only /app/var (and /tmp).
RUN python -m compileall -q /app \
    && chmod -R a+rX,go-w /app \
    && useradd --system --uid 10001 --home-dir /app/var --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0750 /app/var
USER app
EXPOSE 8000
# One process per container (see docker-compose.yml): scale with replicas, not --workers.
CMD ["uvicorn", "api.app:app_factory", "--factory", "--host", "0.0.0.0", "--port", "8000"]
