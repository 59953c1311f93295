# The runner image: kubemigrate as a static executable, the CA bundle, and nothing
# else (no shell, no libc). See docs/runner.md.
#
#   docker build -t kubemigrate-runner .
#
# scripts/build-static builds and checks the executable; the test that proves it
# runs in an empty root file system is crates/kubemigrate/tests/static_chroot.rs.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the build between image builds; the
# executable is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bin="$(bash scripts/build-static /src/target/static)" \
    && cp "$bin" /kubemigrate

FROM scratch
# For sslmode=verify-ca/verify-full: the first place kubemigrate looks for the
# system's roots (SSL_CERT_FILE and PGSSLROOTCERT still override it).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /kubemigrate /kubemigrate
# Numeric, so no /etc/passwd is needed: the "nonroot" user of distroless images.
USER 65532:65532
ENTRYPOINT ["/kubemigrate"]
