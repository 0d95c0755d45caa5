# syntax=docker/dockerfile:1
#
# One image for the three services (and the other sagabox subcommands):
# docker-compose.yml runs it with command ["order"], ["customer"] or
# ["payment"]; everything else comes from environment variables.
#
#   docker build -t sagabox .
#   docker run --rm sagabox help

FROM golang:1.26 AS build
# go.mod may ask for a newer 1.26.x than a cached golang:1.26 image has; the
# image's GOTOOLCHAIN=local would refuse, auto fetches that toolchain.
ENV GOTOOLCHAIN=auto
WORKDIR /src
# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# deploy/deploy_test.go runs this same build command (without -o /out).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sagabox ./cmd/sagabox

# Alpine rather than distroless: the compose healthchecks need an HTTP client
# in the image (busybox wget) to call GET /healthz.
FROM alpine:3.22
# /var/lib/sagabox/keys: where docker-compose.yml mounts the card key
# volume; a new volume takes this directory's owner and mode.
RUN apk add --no-cache ca-certificates tzdata \
    && addgroup -S -g 10001 sagabox \
    && adduser -S -D -H -u 10001 -G sagabox sagabox \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/sagabox/keys
COPY --from=build /out/sagabox /usr/local/bin/sagabox
USER 10001:10001
EXPOSE 8070 8080 8081 8082
ENTRYPOINT ["/usr/local/bin/sagabox"]
CMD ["help"]
