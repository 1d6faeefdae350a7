# tether serve in a container: `docker build -t tether .`, then
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9464:9464 -e TETHER_ALLOW_ORIGIN=https://app.example tether
# Settings come from TETHER_* variables (README: "Operating it"), or mount a file and pass --config.
# The image holds the built package, its runtime dependencies and the broker clients only; it runs as the
# unprivileged user `node`.

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Nothing runs at install time (the package has no install scripts; esbuild's, for tests only, is not needed).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json tsconfig.cli.json tsconfig.web.json ./
COPY scripts/build.mjs scripts/
COPY src src
COPY web web
# The broker clients (redis, nats) are optional peers of the package, installed above as dev dependencies: make
# them the image's own dependencies before pruning, so that --redis and --nats (TETHER_REDIS_URL, ...) work in
# the image; they were pruned, and the hub said "needs the 'redis' package".
RUN npm pkg set dependencies.redis="$(npm pkg get devDependencies.redis | tr -d '"')" dependencies.nats="$(npm pkg get devDependencies.nats | tr -d '"')" \
 && npm pkg delete devDependencies.redis devDependencies.nats
RUN node scripts/build.mjs && npm prune --omit=dev --ignore-scripts

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    TETHER_HOST=0.0.0.0 \
    TETHER_PORT=8080 \
    TETHER_METRICS_PORT=9464 \
    TETHER_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/web web
USER node
# 8080: pages and WebSockets; 9464: /metrics, /health/live and /health/ready (publish it to a private address only).
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM closes every socket with 1001 and waits up to 5 s: give `docker stop` more (its default, 10 s, does).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
