# partyflow server: the ComfyUI-compatible API on port 8188, run as an unprivileged user.
#   docker build -t partyflow .
#   docker run -p 8188:8188 -e PARTYFLOW_API_TOKEN=... -v partyflow-home:/data partyflow
# Listening on 0.0.0.0 inside the container requires a token (or --insecure behind your own proxy).
# `docker stop` sends SIGTERM: the running prompt gets --shutdown-grace seconds (default 8, under Docker's 10)
# to finish, else it stays queued and runs first on the next start.
#
# Ray (issue 15): `docker build --target worker -t partyflow-worker .` builds the image of a Ray node that runs
# partyflow's prompt workers and model actors (partyflow with the `ray` extra; the default command joins the
# cluster at $RAY_HEAD_ADDRESS). Use the same image for the head and for the server that dispatches to the cluster
# (`ray start ... && partyflow serve`, see deploy/kuberay/): Ray needs one Ray and Python version cluster-wide.
FROM python:3.11-slim AS base

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

# ---- a Ray node for partyflow's workers (and the head, and the Ray-backed server) ----
FROM base AS worker
# wget: KubeRay's readiness probes fetch Ray's health endpoints with it
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/* \
    && pip install ".[ray]" && rm -rf /root/.cache
ENV RAY_HEAD_ADDRESS=ray-head:6379
USER partyflow:partyflow
VOLUME ["/data"]
# Ray writes its sockets and logs under /tmp/ray; the shell form expands $RAY_HEAD_ADDRESS at start
CMD ["sh", "-c", "exec ray start --address=\"$RAY_HEAD_ADDRESS\" --block --disable-usage-stats"]

# ---- the server (the default target: `docker build .` builds it, as before) ----
FROM base AS server
RUN pip install . && rm -rf /root/.cache
USER partyflow:partyflow
VOLUME ["/data"]
EXPOSE 8188
STOPSIGNAL SIGTERM
CMD ["partyflow", "serve", "--listen", "0.0.0.0", "--port", "8188", "--log-format", "json"]
