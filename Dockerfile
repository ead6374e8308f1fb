# syntax=docker/dockerfile:1
#
# One image for both binaries: productsd (the API, the entrypoint) and
# loadtest (run it with --entrypoint /usr/local/bin/loadtest).
#
#   docker build -t productcache/productsd:dev .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
# Dependencies first, so that a source change does not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/productsd ./cmd/productsd && \
    go build -trimpath -ldflags="-s -w" -o /out/loadtest ./cmd/loadtest

# distroless/static has no shell, no curl and no package manager; the nonroot
# variant runs as uid 65532. The health check is productsd itself (GET
# /readyz on its own port); Kubernetes ignores it and probes /healthz and
# /readyz over HTTP instead.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/productsd /out/loadtest /usr/local/bin/
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/productsd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/productsd"]
