# Multi-stage build: a static wsrelay binary on a minimal, non-root image.
# Every setting comes from WSRELAY_* environment variables (see README.md).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN make build VERSION=$VERSION

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/wsrelay /usr/local/bin/wsrelay
USER nonroot:nonroot
# 8080: WebSockets, /health, /ready (publish it). 8081: /metrics, /stats,
# the server API, /health, /ready (keep it on the private network).
EXPOSE 8080 8081
ENV WSRELAY_ADDR=:8080 WSRELAY_ADMIN_ADDR=:8081
# The image has no shell or curl: the binary probes its own /health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/wsrelay", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/wsrelay"]
