# One image recipe for the three services; docker-compose.yml builds it once per service with its
# SERVICE and EXTRAS (the producer and sink images leave out torch, about 2 GB lighter).
FROM python:3.11-slim

ARG EXTRAS=""
ARG SERVICE
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PORTFOLIO_LOG_FILE=/var/log/portfolio/data.log PORTFOLIO_CHECKPOINT_DIR=/var/lib/portfolio/checkpoints \
    PORTFOLIO_HTTP_HOST=0.0.0.0
WORKDIR /app

# The dependency layer: only pyproject.toml, so a code change does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services && touch shared/__init__.py services/__init__.py \
    && pip install ".${EXTRAS:+[$EXTRAS]}" && pip uninstall -y portfolio

COPY shared ./shared
COPY services ./services
RUN pip install --no-deps . \
    && useradd --system --home /var/lib/portfolio --create-home portfolio \
    && mkdir -p /var/log/portfolio && chown portfolio /var/log/portfolio
USER portfolio

ENV SERVICE=${SERVICE}
CMD ["sh", "-c", "exec portfolio \"$SERVICE\""]
