# edgeport: SIP edge proxy for Routr.
# The codec is compiled with mypyc (EDGEPORT_COMPILE=1, see README: Performance);
# `docker build --build-arg EDGEPORT_COMPILE=0 .` builds the pure-Python image.
# The build stage has gcc and the Python headers (the full python image); the
# runtime stage has neither and runs the same CPython build.
ARG EDGEPORT_COMPILE=1

FROM python:3.11 AS build
ARG EDGEPORT_COMPILE
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY build_support ./build_support
COPY edgeport ./edgeport
RUN EDGEPORT_COMPILE="$EDGEPORT_COMPILE" pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ARG EDGEPORT_COMPILE
# A fixed numeric uid and gid: Kubernetes' runAsNonRoot can check a number,
# and deploy/kubernetes sets the same (runAsUser: 10001).
RUN groupadd --system --gid 10001 edgeport \
    && useradd --system --uid 10001 --gid edgeport --no-create-home edgeport
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && edgeport --version \
    && { [ "$EDGEPORT_COMPILE" = 0 ] || edgeport --version | grep -q "(codec: compiled)"; }
COPY deploy/edgeport.yaml /etc/routr/edgeport.yaml
# The HEALTHCHECK below needs the health server on.
ENV CONFIG_PATH=/etc/routr/edgeport.yaml \
    ENABLE_HEALTHCHECKS=true \
    PYTHONUNBUFFERED=1
USER 10001:10001
# SIP over UDP and TCP, TLS, WS, WSS; health and metrics.
EXPOSE 5060/udp 5060/tcp 5061/tcp 5062/tcp 5063/tcp 8080/tcp
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["edgeport"]
