#!/usr/bin/env bash
# One-off initialisation of the Airflow metadata database: compose's `airflow-init` service runs it,
# and so does `make deploy-up` (deploy/local.py) before starting the services. Idempotent.
set -euo pipefail
: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?the metadata database URL is not set}"
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in the env file (see .env.example)}"
airflow db migrate
python -m crmtier.airflow_setup   # admin password from the env file, the one-slot warehouse pool
