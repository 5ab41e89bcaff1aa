# The operator image: the binary plus PostgreSQL for every supported server
# major (14-18). A backup uses the source's own pg_dump; a restore the
# target's own pg_restore (see src/engine/pgtools.rs: pg_restore 17+ cannot restore
# into 14-16, archives of pg_dump 17+ need pg_restore 17+); having every major
# installed means every supported combination works, and a downgrade is refused.
# Physical protection needs the server packages too: pg_basebackup and
# pg_receivewal stream from the source, and a physical drill starts a scratch
# instance of the source's own major (postgres, pg_ctl, pg_verifybackup,
# pg_waldump) in its Job's volume. No cluster is created at install. The image
# has the C and C.UTF-8 locales only: a source initialized with another locale
# cannot be started in a physical drill (the drill fails saying so).
# Runs as the non-root user 65532 (the UID the engine Jobs' security context sets).
#
#   docker build -t artifortress-operator .          users: binary built here, tools from PGDG
#
# The test harness (hack/node-image.sh), which reaches no registry, builds this
# same file with buildah and three arguments:
#   BASE_IMAGE  a Debian bookworm image it made from a debootstrap root file system
#   PG_CLIENTS  debian: Debian's own postgresql-15 (the harness's servers are 15)
#   BINARY      prebuilt: the artifortress-operator binary at the build context's root
ARG RUST_VERSION=1.95
ARG BASE_IMAGE=debian:bookworm-slim
# pgdg (PostgreSQL 14-18 from apt.postgresql.org) or debian (15 only).
ARG PG_CLIENTS=pgdg
# source (compiled in the first stage) or prebuilt (from the build context).
ARG BINARY=source

FROM rust:${RUST_VERSION}-bookworm AS binary-source
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY formats formats
# sqlx embeds the migrations at compile time.
COPY migrations migrations
RUN cargo build --release --locked \
 && strip -o /artifortress-operator target/release/artifortress-operator

FROM scratch AS binary-prebuilt
COPY artifortress-operator /artifortress-operator

# Only the stage BINARY names is built (BuildKit and buildah skip unused stages).
FROM binary-${BINARY} AS binary

FROM ${BASE_IMAGE} AS clients-pgdg
ARG PG_MAJORS="14 15 16 17 18"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get install -y --no-install-recommends $(for v in $PG_MAJORS; do echo "postgresql-$v"; done) \
 && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

FROM ${BASE_IMAGE} AS clients-debian
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-15 \
 && rm -rf /var/lib/apt/lists/*

FROM clients-${PG_CLIENTS}
COPY --from=binary /artifortress-operator /usr/local/bin/artifortress-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/artifortress-operator"]
CMD ["run"]
