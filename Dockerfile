# One image for every Netra service; the command chooses which (gateway, run, migrate, …).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/netra
COPY pyproject.toml README.md ./
COPY core ./core
COPY policies ./policies
COPY gateway ./gateway
COPY cli ./cli
COPY migrations ./migrations
RUN /opt/netra/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/netra/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NETRA_DATA_DIR=/var/lib/netra \
    NETRA_HOST=0.0.0.0 \
    NETRA_PORT=8080
RUN groupadd --system netra && useradd --system --gid netra --home-dir /var/lib/netra netra \
    && mkdir -p /var/lib/netra && chown netra:netra /var/lib/netra
COPY --from=build /opt/netra /opt/netra
USER netra
WORKDIR /var/lib/netra
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)" || exit 1
ENTRYPOINT ["netra"]
CMD ["gateway"]
