# For users with Docker: one image for every reference app.
FROM python:3.12-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY src ./src
COPY apps ./apps
RUN pip install --no-cache-dir '.[psycopg,redis,s3,crypto,celery]'
ENV PYTHONPATH=/srv/apps
EXPOSE 8000
