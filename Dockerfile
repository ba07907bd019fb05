# For those who build with a Docker engine; `make image` builds the same
# image without one. The result runs as 65532 on distroless/static.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags kustomize_disable_go_plugin_support,nocheck -ldflags "-s -w -X main.version=${VERSION}" -o /stateguard ./cmd/stateguard

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title=stateguard \
      org.opencontainers.image.source=https://github.com/stateguard/stateguard
COPY --from=build /stateguard /usr/local/bin/stateguard
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stateguard"]
