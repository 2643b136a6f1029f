# Quarry worker and API image: slim Node 20, production dependencies only, non-root.
FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY shared ./shared
COPY producers ./producers
COPY workers ./workers
COPY api ./api
USER node
HEALTHCHECK --interval=10s --timeout=2s CMD node -e "fetch('http://127.0.0.1:'+(process.env.QUARRY_API_PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(0))"
CMD ["node", "--import", "tsx", "api/main.ts"]
