# The operator image: the binary plus PostgreSQL client tools for every supported
# server major (14-18). A backup uses the source's own pg_dump; a restore the
# target's own pg_restore (see src/engine/pgtools.rs: pg_restore 17+ cannot restore
# into 14-16, archives of pg_dump 17+ need pg_restore 17+); having every major
# installed means every supported combination works, and a downgrade is refused.
# Runs as the non-root user 65532 (the UID the engine Jobs' security context sets).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY formats formats
# sqlx embeds the migrations at compile time.
COPY migrations migrations
RUN cargo build --release --locked && strip target/release/artifortress-operator

FROM debian:bookworm-slim
# Client tools from the PostgreSQL project's repository, one per supported server major.
ARG PG_MAJORS="14 15 16 17 18"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends $(for v in $PG_MAJORS; do echo "postgresql-client-$v"; done) \
 && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/artifortress-operator /usr/local/bin/artifortress-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/artifortress-operator"]
CMD ["run"]
