# Build: the crate needs only a Rust toolchain and a C compiler (SQLite is bundled, TLS is
# rustls); rust:slim ships gcc and libc6-dev.
FROM rust:1-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer of their own, so that a change to the code does not rebuild them.
# The store's proc-macro crate is a workspace member the build needs from the start; it is small
# and rarely changes.
COPY Cargo.toml Cargo.lock ./
COPY macros ./macros
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# The migrations, the contract and the finance dashboard's files are compiled into the binary.
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
COPY dashboard/public ./dashboard/public
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked

# Run: glibc and nothing else; the binary carries its own TLS roots.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid tollgate --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin tollgate \
 && mkdir /data \
 && chown tollgate:tollgate /data
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
WORKDIR /data
ENV TOLLGATE_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/tollgate.db \
    TOLLGATE_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER tollgate
# `tollgate healthcheck` probes /healthz at the configured bind address; 0.0.0.0 means 127.0.0.1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["tollgate", "healthcheck"]
ENTRYPOINT ["tollgate"]
CMD ["serve"]
