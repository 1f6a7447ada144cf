# One image for the API and the worker (the command differs).
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
WORKDIR /app
COPY pyproject.toml ./
COPY api ./api
COPY core ./core
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --system --uid 10001 app && mkdir -p /app/var && chown app /app/var
USER app
EXPOSE 8000
# One process per container (see docker-compose.yml): scale with replicas, not --workers.
CMD ["uvicorn", "api.app:app_factory", "--factory", "--host", "0.0.0.0", "--port", "8000"]
