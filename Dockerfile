# syntax=docker/dockerfile:1
#
# ecsync container image.
#
#   docker build -t ecsync .
#   docker run --rm -p 9464:9464 -e ECSYNC_REPO=https://github.com/acme/deploy.git \
#     -e ECSYNC_PATH=manifests/prod -e AWS_REGION=us-east-1 ecsync
#
# The release build compiles the AWS SDK: give the builder at least 8 GB of memory
# (aws-sdk-ec2 is the peak) and expect 10-20 minutes on two cores without a warm cache.
# BuildKit (the default builder since Docker 23) is needed for the cache mounts.

############################ build ############################
FROM rust:1-bookworm AS builder
WORKDIR /src

# Only what `cargo build --bin ecsync` reads. Cargo.toml declares the bench target, so
# benches/ must be present for the manifest to load; tests/ is not needed.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ecsync \
 && install -m 0755 target/release/ecsync /usr/local/bin/ecsync

############################ runtime ############################
FROM debian:bookworm-slim

# git: ecsync shells out to the git CLI for every fetch.
# openssh-client: git's transport for ssh:// and scp-style repositories.
# ca-certificates: TLS to AWS APIs and https:// Git remotes.
# curl: the HEALTHCHECK below and the ECS container health check on /healthz.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client curl \
 && rm -rf /var/lib/apt/lists/*

# Non-root user with a fixed UID/GID (10001), so Kubernetes `runAsNonRoot` can verify it.
# /var/cache/ecsync holds the bare Git cache; /home/ecsync holds ~/.ssh/known_hosts.
RUN groupadd --system --gid 10001 ecsync \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/ecsync --create-home \
      --shell /usr/sbin/nologin ecsync \
 && mkdir -p /var/cache/ecsync \
 && chown 10001:10001 /var/cache/ecsync /home/ecsync

COPY --from=builder /usr/local/bin/ecsync /usr/local/bin/ecsync

# Listen on every interface inside the container (the binary's default is loopback only),
# keep the Git cache in the writable volume, log JSON.
ENV ECSYNC_LISTEN=0.0.0.0:9464 \
    ECSYNC_CACHE_DIR=/var/cache/ecsync \
    ECSYNC_LOG_FORMAT=json \
    HOME=/home/ecsync

# Declared volumes keep the ownership above when a read-only root filesystem is used
# (Fargate bind mounts copy the image's directory and its permissions; Docker makes an
# anonymous volume).
VOLUME ["/var/cache/ecsync", "/home/ecsync"]

USER 10001:10001
EXPOSE 9464

# /healthz answers as soon as the HTTP listener is up. If you change ECSYNC_LISTEN's port,
# override this check too (Kubernetes ignores HEALTHCHECK: the chart's probes are used).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9464/healthz"]

ENTRYPOINT ["ecsync"]
CMD ["run"]
