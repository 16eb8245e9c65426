# syntax=docker/dockerfile:1
# One image for both processes: `node dist/workers/api.js` (default) and `node dist/workers/worker.js`.
# Debian-based (not Alpine): Temporal's native core and argon2 ship glibc builds.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm install is the fallback for a lockfile that misses optional platform packages (see
# scripts/ensure-node-modules.sh); it installs the locked versions all the same.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY availability availability
COPY api api
COPY db db
COPY platform platform
COPY workers workers
COPY scripts scripts
# tsc emits JavaScript only; the SQL migrations travel next to the compiled db client.
RUN npm run build && cp -R db/migrations dist/db/migrations

FROM node:20-bookworm-slim AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=production-deps /app/node_modules node_modules
COPY --from=build /app/dist dist
USER node
EXPOSE 3000
# Exec form: node is PID 1 and receives SIGTERM itself, so the API and the worker drain.
CMD ["node", "dist/workers/api.js"]
