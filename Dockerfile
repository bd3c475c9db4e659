# One image for every Airflow service of docker-compose.yml: Python 3.11, the locked dependencies
# (uv.lock, nothing unpinned), the crmtier package, dags/, dbt_project/ and expectations/ baked in.
# var/ (landing, warehouse, publish, outbox, reports, Data Docs, Airflow home) is a volume.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/crmtier/.venv \
    PATH=/opt/crmtier/.venv/bin:$PATH \
    CRMTIER_HOME=/opt/crmtier/var

RUN pip install --no-cache-dir uv==0.13.9 \
    && useradd --uid 50000 --home-dir /opt/crmtier --no-create-home crmtier

WORKDIR /opt/crmtier
# dependencies first (a layer that changes only with the lock file), then the project itself
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3.11
COPY crmtier/ crmtier/
COPY dags/ dags/
COPY dbt_project/ dbt_project/
COPY expectations/ expectations/
COPY deploy/ deploy/
RUN uv sync --frozen --no-dev --python /usr/local/bin/python3.11 \
    && mkdir -p var && chown crmtier:crmtier var

USER crmtier
VOLUME ["/opt/crmtier/var"]
