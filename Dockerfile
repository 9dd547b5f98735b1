# syntax=docker/dockerfile:1
# chartstream's container image: one static binary on distroless, non-root.
#
#   make image                      # builds chartstream:local (needs docker)
#   docker build -t chartstream .   # the same by hand
#
# The Dockerfile sits at the repository root because the build context is
# the whole module (go.mod, every package, the embedded migrations) and
# .dockerignore must sit at the context's root: `docker build .` then works
# with no flags, and so do compose's and CI's defaults.

# GO_VERSION follows go.mod's go line.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo: the final image has no libc), reproducible paths
# (-trimpath), no symbol table (-s -w).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/chartstream ./cmd/chartstream
# A state directory the non-root user owns (no shell in the final image to
# make it there): a named volume mounted on it starts with that owner.
RUN mkdir -p /out/state

# distroless static: CA certificates, tzdata, /etc/passwd with nonroot
# (uid 65532); no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="chartstream" \
	org.opencontainers.image.description="Multi-tenant, event-sourced clinical data platform" \
	org.opencontainers.image.source="https://github.com/chartstream/chartstream" \
	org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/chartstream /usr/local/bin/chartstream
COPY --from=build --chown=65532:65532 /out/state /var/lib/chartstream
USER 65532:65532
# The API listens on every address in a container; the metrics listener
# (METRICS_ADDR) is set by the deployment.
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
# The binary is its own probe (no curl here): GET /healthz on loopback.
# For `chartstream work`, which serves no API, the deployment overrides it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
	CMD ["/usr/local/bin/chartstream", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/chartstream"]
CMD ["serve"]
