# partyflow server: the ComfyUI-compatible API on port 8188, run as an unprivileged user.
#   docker build -t partyflow .
#   docker run -p 8188:8188 -e PARTYFLOW_API_TOKEN=... -v partyflow-home:/data partyflow
# Listening on 0.0.0.0 inside the container requires a token (or --insecure behind your own proxy).
# `docker stop` sends SIGTERM: the running prompt gets --shutdown-grace seconds (default 8, under Docker's 10)
# to finish, else it stays queued and runs first on the next start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PARTYFLOW_HOME=/data

RUN groupadd --system --gid 10001 partyflow \
    && useradd --system --uid 10001 --gid partyflow --home-dir /data --shell /usr/sbin/nologin partyflow \
    && mkdir -p /data && chown partyflow:partyflow /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /root/.cache

USER partyflow:partyflow
VOLUME ["/data"]
EXPOSE 8188
STOPSIGNAL SIGTERM
CMD ["partyflow", "serve", "--listen", "0.0.0.0", "--port", "8188", "--log-format", "json"]
