# syntax=docker/dockerfile:1
# One image for every role: `sockethub gateway`, `sockethub runner --platform NAME`,
# `sockethub runners`. Used by compose/compose.yaml and by the Helm chart (helm/sockethub).
#
#   docker build -t sockethub-kafka:0.1.0 .
#
# It installs the runtime lock (requirements/runtime.lock, hashes required), then this
# project without dependencies, plus the published npm packages whose browser bundles
# the gateway serves (/socket.io.js, /sockethub-client.js): `npm ci` only downloads
# them, nothing is compiled.
#
# Base images are pinned by digest, and Python's minor version is the lock's (3.11).
# To move to a newer image: `docker buildx imagetools inspect python:3.11-slim` (and
# node:20-slim), then replace the digests below.

FROM node:20-slim@sha256:1e85773c98c31d4fe5b545e4cb17379e617b348832fb3738b22a08f68dec30f3 AS bundles
WORKDIR /bundles
COPY gateway/demo/package.json gateway/demo/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

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
COPY requirements/build.lock requirements/runtime.lock ./requirements/
RUN pip install --require-hashes -r requirements/build.lock -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY platform_runners ./platform_runners
COPY schemas ./schemas
COPY sockethub ./sockethub
RUN pip install --no-deps --no-build-isolation . \
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
