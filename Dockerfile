# The ONE image: API (`one serve`), relay (`one relay`) and projection workers (`one worker`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY commands commands
COPY projections projections
COPY streams streams
COPY sagas sagas
COPY providers providers
COPY api api
COPY infra infra
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["one", "serve", "--host", "0.0.0.0", "--port", "8000"]
