# syntax=docker/dockerfile:1
# One image for every role: `sockethub gateway`, `sockethub runner --platform NAME`,
# `sockethub runners`. Used by compose/compose.yaml and by the Helm chart (helm/sockethub).
#
#   docker build -t sockethub-kafka:0.1.0 .
#
# It installs this project (and its wheels from PyPI), plus the published npm
# packages whose browser bundles the gateway serves (/socket.io.js,
# /sockethub-client.js): `npm ci` only downloads them, nothing is compiled.

FROM node:20-slim AS bundles
WORKDIR /bundles
COPY gateway/demo/package.json gateway/demo/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric uid/gid so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 sockethub \
 && useradd --system --uid 10001 --gid sockethub --home-dir /home/sockethub \
        --create-home --shell /usr/sbin/nologin sockethub

WORKDIR /opt/sockethub
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY platform_runners ./platform_runners
COPY schemas ./schemas
COPY sockethub ./sockethub
RUN pip install . \
 && rm -rf /opt/sockethub/build /root/.cache
# gateway.demo serves the bundles from node_modules beside its module.
COPY --from=bundles /bundles/node_modules \
     /usr/local/lib/python3.11/site-packages/gateway/demo/node_modules

USER 10001:10001
WORKDIR /home/sockethub

# Inside a container the gateway must listen on every interface; publish the port
# on the host's loopback (compose) or behind a Service (Kubernetes).
ENV SOCKETHUB_HOST=0.0.0.0 \
    SOCKETHUB_PORT=10550 \
    SOCKETHUB_LOG_FORMAT=json
EXPOSE 10550

ENTRYPOINT ["sockethub"]
CMD ["gateway"]
