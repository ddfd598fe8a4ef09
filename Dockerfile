# One image for every role: supernode, dfdaemon (with the registry mirror) and dfget.
FROM python:3.11-slim

# glibc malloc thresholds that Python gRPC needs for MiB-sized messages (docs/performance.md); the
# processes also set them at start-up, this covers child processes.
ENV MALLOC_MMAP_THRESHOLD_=67108864 \
    MALLOC_TRIM_THRESHOLD_=268435456 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/dandelion
COPY pyproject.toml README.md ./
COPY src ./src
COPY generated ./generated
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin dandelion \
    && mkdir -p /data /run/dandelion \
    && chown dandelion:dandelion /data /run/dandelion

USER dandelion
VOLUME ["/data"]
# 8002: supernode gRPC; 65000: dfdaemon piece service; 65001: registry mirror.
EXPOSE 8002 65000 65001
CMD ["supernode", "--help"]
