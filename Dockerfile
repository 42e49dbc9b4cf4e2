# Build stage: the release binary only.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin insight

# Runtime stage: a slim system, a non-root user, the binary.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home insight
COPY --from=build /src/target/release/insight /usr/local/bin/insight
USER 10001
ENV INSIGHT_LISTEN=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["insight"]
CMD ["serve"]
