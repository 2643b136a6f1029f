# Quarry worker and API image: slim Node 24 LTS (pinned), production dependencies only, non-root.
# Node 24 strips TypeScript types itself, so the sources run as they are, without tsx (a
# devDependency). The default command is the API; compose runs workers from the same image with
# `workers/main.ts`.
FROM node:24.22.3-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY scripts/polars-per-platform.mjs ./scripts/
# Polars' native binary for this image's platform (linux x64 or arm64), then the lockfile's
# production dependencies.
RUN node scripts/polars-per-platform.mjs && npm ci --omit=dev --no-audit --no-fund
COPY shared ./shared
COPY producers ./producers
COPY workers ./workers
COPY api ./api
# The workers' object cache (compose mounts a named volume here): Docker gives a new volume this
# directory's owner, so the node user can write it.
RUN mkdir -p /var/cache/quarry-objects && chown node:node /var/cache/quarry-objects
USER node
# Unhealthy unless /healthz answers 2xx within 2 s: a refused connection is a failure too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.QUARRY_API_PORT||3000)+'/healthz',{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "api/main.ts"]
