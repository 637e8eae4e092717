# tokenwatt image: loadgen (the entrypoint) and energy-exporter.
#
#   docker build -t tokenwatt .
#   docker run --rm tokenwatt --scenario energy_star --sim --num-samples 50
#   docker run --rm --gpus all -p 9466:9466 --entrypoint energy-exporter tokenwatt --listen :9466
#
# docker-compose.yml builds this image for its loadgen, simulator and
# energy-exporter services. The scenarios in configs/scenarios are
# embedded in loadgen, so the image needs no config files.
#
# Why cgo (CGO_ENABLED=1): energy-exporter, and loadgen's --energy
# dcgm|nvml, read the GPU through go-dcgm and go-nvml, which are cgo
# wrappers that dlopen libdcgm.so.4 and libnvidia-ml.so.1 at run time
# rather than linking them. So the image builds and runs without a GPU
# or NVIDIA's libraries (loadgen against a remote server, --sim, or
# --energy scrape:URL need neither); on a GPU host the NVIDIA container
# toolkit mounts libnvidia-ml.so.1 into the container (--gpus, or the
# compose GPU reservation, with NVIDIA_DRIVER_CAPABILITIES including
# utility), and NVML works. DCGM is not mounted by the toolkit:
# libdcgm.so.4 (DCGM 4.0 or newer) must be in the image itself, hence
# RUNTIME_IMAGE, e.g.
#
#   docker build --build-arg RUNTIME_IMAGE=nvcr.io/nvidia/cloud-native/dcgm:4.4.2-1-ubuntu22.04 -t tokenwatt-dcgm .
#
# (any Debian/Ubuntu-based image with glibc >= 2.34 and apt-get; the
# binaries need nothing newer than GLIBC_2.34). Without it, --source auto
# falls back from DCGM to NVML.

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
ENV CGO_ENABLED=1
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/ ./cmd/loadgen ./cmd/energy-exporter \
    && /out/loadgen version && /out/energy-exporter version

FROM ${RUNTIME_IMAGE}
# ca-certificates: https endpoints, Hugging Face datasets, --push-url.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A non-root user. NVML works as non-root under the NVIDIA container
# toolkit (it exposes /dev/nvidia* to the container's user); embedded
# DCGM may need root for some fields: run energy-exporter with
# `user: root` (compose) or `--user 0` if it reports permission errors.
# /results is where docker-compose.yml mounts the results volume; Docker
# copies its owner into a new named volume, so the run can write there.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/tokenwatt \
      --shell /usr/sbin/nologin tokenwatt \
    && install -d -o tokenwatt -g tokenwatt /results
COPY --from=build /out/loadgen /out/energy-exporter /usr/local/bin/
USER 10001:10001
WORKDIR /home/tokenwatt
# loadgen --metrics-addr, energy-exporter --listen, loadgen sim --addr.
EXPOSE 9465 9466 8000
ENTRYPOINT ["loadgen"]
CMD ["--help"]
