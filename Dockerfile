# syntax=docker/dockerfile:1
# kfw_exporter in a container: a static binary on distroless, as a non-root
# user (README.md, "Docker and Kubernetes"; deploy/kubernetes/ for a
# DaemonSet).
#
#   docker build -t kfw_exporter --build-arg REVISION=$(git rev-parse --short HEAD) .
#   docker run -d --name kfw_exporter --network host --cap-add NET_ADMIN \
#       -v /proc:/host/proc:ro kfw_exporter --path.procfs=/host/proc
#
# --network host: generic netlink is per network namespace and the module
# multicasts its events in the initial one only. --cap-add NET_ADMIN: joining
# the events group needs it; the binary carries it as a file capability,
# which is how a non-root process gets it in a container (so do not add
# --security-opt no-new-privileges, which voids file capabilities).
# packaging/docker_test.go keeps the build flags in step with the Makefile.

FROM golang:1.26 AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG REVISION=unknown
ARG BRANCH=unknown
RUN VERSION=$(sed -n 's/^PACKAGE_VERSION="\([^"]*\)"$/\1/p' kmod/dkms.conf) \
    && BUILD_DATE=$(date -u +%Y%m%d-%H:%M:%S) \
    && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=kfw-docker \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
        -o /out/kfw_exporter . \
    && setcap cap_net_admin+ep /out/kfw_exporter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kfw_exporter /bin/kfw_exporter
USER 65532:65532
EXPOSE 10170
ENTRYPOINT ["/bin/kfw_exporter"]
