# The ONE image: API (`one serve`), relay (`one relay`), projection workers (`one worker`), the
# vector projection (`one worker --knowledge`; the local embedding model ships in its wheel) and
# the saga driver (`one sagas run`). Installed from the source tree (the compiled contract
# artifact in contracts/artifacts is read from it).
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["one", "serve", "--host", "0.0.0.0", "--port", "8000"]
