# syntax=docker/dockerfile:1
#
# paddock's container image: paddock as PID 1, supervising the apps of the
# manifests mounted at /etc/paddock. docs/deploy-container.md tells how to
# build and run it.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t paddock .
#   docker build --target node -t paddock:node .     # with Node.js, for Node apps
#
# Targets: the last stage (runtime) is what `docker build .` gives: a static
# paddock on distroless/static, nothing else (no shell, no libc). `node`
# adds Node.js (NODE_VERSION, 20) on Debian slim for Node apps. Both run as
# a numeric non-root user. internal/dockerfile's tests read this file: the
# go build flags below are the ones TestStaticBuild builds with (no dynamic
# section), and TestImageTargets and TestBuildContext check the ENTRYPOINT,
# the USER of each final target, PATH and every COPY source against
# .dockerignore.

ARG GO_VERSION=1.26
# NODE_VERSION is the Node.js of the node target: 20, the version paddock's
# Node tests (cluster, IPC, parity) run against; --build-arg NODE_VERSION=22
# (or 24) for a later LTS.
ARG NODE_VERSION=20

# build: a static paddock (no cgo, so no libc to find at run time), with
# paths trimmed and symbols stripped, stamped with VERSION as the Makefile
# stamps it (`paddock version`).
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/usr/local/bin/paddock ./cmd/paddock \
	&& mkdir -p /out/etc/paddock

# node: paddock beside Node.js (node, npm in /usr/local/bin), for apps
# that run `exec: node`. Debian slim keeps a shell and npm for the images
# built FROM it; user node (1000) runs it.
FROM node:${NODE_VERSION}-bookworm-slim AS node
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=build /out/usr/local/bin/paddock /usr/local/bin/paddock
COPY --from=build /out/etc/paddock /etc/paddock
USER 1000:1000
WORKDIR /home/node
STOPSIGNAL SIGTERM
ENTRYPOINT ["paddock", "run", "/etc/paddock"]

# runtime (the default target): paddock alone on distroless/static, as its
# user nonroot (65532). Apps are static programs copied in by an image
# built FROM this one, or mounted.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=build /out/usr/local/bin/paddock /usr/local/bin/paddock
COPY --from=build /out/etc/paddock /etc/paddock
USER 65532:65532
STOPSIGNAL SIGTERM
ENTRYPOINT ["paddock", "run", "/etc/paddock"]
