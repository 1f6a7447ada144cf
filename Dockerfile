# One image for the API and the worker (the command differs).
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core postgresql-client \
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
CMD ["uvicorn", "api.app:app_factory", "--factory", "--host", "0.0.0.0", "--port", "8000"]
