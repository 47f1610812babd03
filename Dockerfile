# Builds the lethe binary. Keys and policies are mounted at run time (see docker-compose.yml),
# never copied into the image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY proto ./proto
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lethe /usr/local/bin/lethe
RUN useradd --system --uid 10001 lethe
USER lethe
WORKDIR /var/lib/lethe
ENTRYPOINT []
