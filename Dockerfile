# One image for every Shelterwatch role: `shelterwatch <sim|gateway|collector|control|db ...>`.
# docker-compose.yml builds it (tag shelterwatch:local) and runs each role from it.

# -- build: install the project and its pinned dependencies into a virtualenv -----------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/shelterwatch
WORKDIR /src
# pyproject.toml pins every dependency; all of them ship wheels for this base image, so no
# compiler is needed. The README is the package's long description.
COPY pyproject.toml README.md ./
COPY shelterwatch ./shelterwatch
COPY firmware_sim ./firmware_sim
COPY gateway ./gateway
COPY collector ./collector
COPY control ./control
# A regular (not editable) install: the runtime stage needs no source tree.
RUN /opt/shelterwatch/bin/pip install . \
 && /opt/shelterwatch/bin/shelterwatch --help > /dev/null

# -- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# A fixed uid, so files in bind mounts and volumes can be given to it (chown 10001).
RUN groupadd --system --gid 10001 shelterwatch \
 && useradd --system --uid 10001 --gid shelterwatch --home-dir /var/lib/shelterwatch \
        --create-home --shell /usr/sbin/nologin shelterwatch

COPY --from=build /opt/shelterwatch /opt/shelterwatch
# `shelterwatch dashboards check|push` read the dashboards from here.
COPY dashboards /usr/local/share/shelterwatch/dashboards
COPY deploy/compose/healthcheck.py /usr/local/lib/shelterwatch/healthcheck.py

ENV PATH=/opt/shelterwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHELTERWATCH_DASHBOARDS_DIR=/usr/local/share/shelterwatch/dashboards

USER shelterwatch
# Relative paths in settings (data/...) land in the service's volume.
WORKDIR /var/lib/shelterwatch
VOLUME ["/var/lib/shelterwatch"]
EXPOSE 8000

# The check of whichever role the container runs (control: its /api/v1/health; gateway and
# collector: linked to the broker; sim: its first device answers; anything else: healthy).
# docker-compose.yml names each service's check explicitly.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/shelterwatch/healthcheck.py", "auto"]

ENTRYPOINT ["shelterwatch"]
CMD ["--help"]
