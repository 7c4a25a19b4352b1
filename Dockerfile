# One image for the cloud side: the operator and the proxy (the chart picks the command).
# Agents are not run from this image: they live on your servers (README.md, "Install the agent on a server").
#
#   docker build -t ghcr.io/OWNER/hrw:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs (pyproject's readme is README.md), so the build context stays small.
COPY pyproject.toml README.md ./
COPY api ./api
COPY operator ./operator
COPY proxy ./proxy
COPY agent ./agent
# From this folder, never by name from an index: the cloud extra holds what the two processes need.
RUN pip install ".[cloud]" && rm -rf /src

# A fixed numeric uid so that the chart's runAsNonRoot can verify it without a passwd lookup.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hrw
USER 10001:10001
WORKDIR /tmp

# No ENTRYPOINT script: the chart runs `python -m hrw_operator ...` or `python -m hrw_proxy ...`
# (the product registers only the agent's console script; see README.md, "Packaging").
CMD ["python", "-m", "hrw_operator", "--help"]
