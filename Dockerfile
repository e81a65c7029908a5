# syntax=docker/dockerfile:1
# weft: a small, non-root image whose entry point is the weft CLI.
#   docker build -t weft .
#   docker run --rm -v "$PWD:/project" weft validate
#   docker run -d -v "$PWD:/project:ro" -e WEFT_STORE=postgres://… weft serve

# --- build: compile TypeScript, then keep only production dependencies -------------------------
FROM node:20-slim AS build
WORKDIR /app
# Toolchain for better-sqlite3 when no prebuilt binary matches the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here; the native module is built
# explicitly instead.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY schema ./schema
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime ----------------------------------------------------------------------------------
FROM node:20-slim
ENV NODE_ENV=production \
    # weft.config.ts is transpiled at start; the project may be mounted read-only, so no disk cache.
    JITI_FS_CACHE=false
WORKDIR /app
# Owned by root and read-only to the `node` user that runs weft.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json README.md ./
COPY bin ./bin
COPY schema ./schema
COPY templates ./templates
# The project (pipelines/, weft.config.ts) is mounted here; a SQLite store goes to /project/.weft.
WORKDIR /project
USER node
# Exit 1 when the run store (or the Redis/PostgreSQL a pipeline needs) is unreachable.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["node", "/app/bin/weft.js", "check"]
ENTRYPOINT ["node", "/app/bin/weft.js"]
CMD ["serve"]
