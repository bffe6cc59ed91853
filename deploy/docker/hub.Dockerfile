# The hub image: one image, every role (`outpost hub serve --role api|ingest|worker`).
# Build from the repository root:
#   docker build -f deploy/docker/hub.Dockerfile -t outpost-hub:0.1.0 .
# deploy/compose/compose.yaml and deploy/k8s/ run it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --home-dir /var/lib/outpost-hub --create-home outpost

WORKDIR /opt/outpost
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY hub ./hub
COPY edge_agent ./edge_agent
COPY outpost ./outpost
COPY bench ./bench
COPY sim ./sim
COPY training ./training
COPY dashboard/out ./dashboard/out
RUN pip install '.[hub]'

USER outpost
ENV OUTPOST_HUB_DATA_DIR=/var/lib/outpost-hub \
    OUTPOST_HUB_HOST=0.0.0.0 \
    OUTPOST_HUB_DASHBOARD_DIR=/opt/outpost/dashboard/out
# API, Prometheus metrics of the role.
EXPOSE 8080 9100
ENTRYPOINT ["outpost", "hub"]
CMD ["serve", "--config", "/etc/outpost/hub.toml", "--role", "api"]
