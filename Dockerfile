# Build a static binary (modernc SQLite needs no cgo), then run it as a
# non-root user in a minimal image with the data directory as a volume.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tether . && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tether /tether
COPY --from=build --chown=65532:65532 /out/data /data
ENV TETHER_ADDR=0.0.0.0:8080 \
    TETHER_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/tether"]
