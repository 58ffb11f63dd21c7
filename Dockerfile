# toolbridge: the gateway, with its bundled demo. `docker compose up` runs it (see README).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
# Inside a container the gateway must listen on every interface to be published; compose
# publishes it on the host's loopback only.
EXPOSE 8080
ENTRYPOINT ["toolbridge"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
