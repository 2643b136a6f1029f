// Authorization by the route the router picked. Every route carries its scope in its config,
// fixed when the route is declared (an onRoute hook): Quarry's routes declare `config.scope`;
// plugins' routes (bull-board, Swagger UI) get the scope of the prefix they are registered
// under; a route with neither makes the app refuse to start. At request time the scope is read
// from the matched route (request.routeOptions.config), never from the URL text: however a path
// is encoded (`/%61dmin`, `/./`, …), whatever route the router decoded it to is the route whose
// scope is checked. A request that matches no route is answered 404 before any key is looked at.
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { QuarryClient } from '../producers/client.ts';
import { API_SCOPES, type ApiScope } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import type { Authenticator } from './auth.ts';
import { type ConsoleSessions, sessionCookieOf } from './console-session.ts';
import { sendError } from './errors.ts';
import { DASHBOARD_PATH } from './plugins/dashboard.ts';
import { DOCS_PATH } from './plugins/openapi.ts';
import { checkQuery } from './request.ts';

export type RouteScope = ApiScope | 'public';

/** A route as declared, with the scope it got: what `app.routeScopes` lists. */
export interface RouteScopeEntry {
  readonly method: string;
  readonly url: string;
  readonly scope: RouteScope;
  /** Undefined for plugins' routes: their querystrings are their plugin's business. */
  readonly query: readonly string[] | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** True for an admin key, or for every request when keys are off. */
    quarryAdmin: boolean;
  }
  interface FastifyInstance {
    /** Every route declared so far with its scope (an operator's view; the attack tests walk it). */
    readonly routeScopes: readonly RouteScopeEntry[];
  }
  interface FastifyRequest {
    /** Whether the caller may act for every tenant: an admin key, or no keys configured. */
    quarryAdmin: boolean;
  }
  interface FastifyContextConfig {
    /**
     * What an API key needs for the route; `public` needs no key. Required on every route of
     * Quarry's own; plugins' routes get theirs from PLUGIN_SCOPES.
     */
    scope?: RouteScope;
    /**
     * The query parameters the route takes, each at most once (anything else is a 400 naming
     * it). Quarry's routes default to none; plugins' routes are left to their plugin.
     */
    query?: readonly string[];
  }
}

/**
 * Scopes of the routes that plugins declare, by the prefix the plugin is registered under: the
 * dashboard (its page, assets and JSON API) is operators'; the documentation is public.
 */
export const PLUGIN_SCOPES: readonly { readonly prefix: string; readonly scope: RouteScope }[] = [
  { prefix: DASHBOARD_PATH, scope: 'admin' },
  { prefix: DOCS_PATH, scope: 'public' },
];

const KNOWN_SCOPES: ReadonlySet<string> = new Set([...API_SCOPES, 'public']);

const underPrefix = (prefix: string, base: string) => prefix === base || prefix.startsWith(`${base}/`);

/** The onRoute hook: fixes the route's scope (and query declaration) as it is declared. */
export function stampScope(route: RouteOptions & { prefix: string }): void {
  const declared = route.config?.scope;
  const where = `${String(route.method)} ${route.url}`;
  if (declared !== undefined) {
    if (!KNOWN_SCOPES.has(declared)) {
      throw new QuarryError('QUARRY_ERR_CONFIG', `route ${where}: unknown scope "${declared}"`);
    }
    route.config = { ...route.config, scope: declared, query: route.config?.query ?? [] };
    return;
  }
  const plugin = PLUGIN_SCOPES.find((p) => underPrefix(route.prefix, p.prefix));
  if (plugin === undefined) {
    // Fail closed, and loudly: a route nobody classified must not start serving at all.
    throw new QuarryError(
      'QUARRY_ERR_CONFIG',
      `route ${where} declares no scope: give it config.scope (${[...KNOWN_SCOPES].join(', ')})`,
    );
  }
  route.config = { ...route.config, scope: plugin.scope };
}

export interface AuthorizationDeps {
  auth: Authenticator;
  /** The API's own client; each request gets its tenant's view of it. */
  client: QuarryClient;
  /** Console sessions: a request without an Authorization header may present a session cookie. */
  sessions: ConsoleSessions;
}

/**
 * Installs the onRoute hook and the onRequest check. Call before any route or plugin is
 * declared: onRoute hooks see only the routes declared after them.
 */
export function registerAuthorization(app: FastifyInstance, deps: AuthorizationDeps): void {
  const { auth, client, sessions } = deps;
  const routes: RouteScopeEntry[] = [];
  app.decorate('routeScopes', routes);
  app.decorateRequest('quarryAdmin', false);
  app.addHook('onRoute', (route) => {
    stampScope(route);
    const { scope = 'admin', query } = route.config ?? {};
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, scope, query });
  });
  app.addHook('onRequest', async (request, reply) => {
    // No route: the not-found handler answers the same 404 to everyone, key or not.
    if (request.is404) return;
    const config = request.routeOptions.config;
    // Stamped at declaration, so never absent; if it were, the strictest scope applies.
    const scope = config.scope ?? 'admin';
    try {
      if (!auth.enabled || scope === 'public') {
        request.quarry = client;
        request.quarryAdmin = !auth.enabled;
      } else {
        // A Bearer key, when sent, is what the request acts with (and needs no CSRF token); else
        // the console's session cookie, checked for the same scope, with a CSRF token on writes.
        const cookie =
          request.headers.authorization === undefined ? sessionCookieOf(request.headers.cookie) : undefined;
        const principal =
          cookie === undefined
            ? auth.authenticate(request.headers.authorization, scope)
            : sessions.authenticate(request, cookie, scope).principal;
        request.quarry = client.forTenant(principal.tenant);
        request.quarryAdmin = principal.scopes.has('admin');
      }
      if (config.query !== undefined) checkQuery(request.query, config.query);
    } catch (error) {
      // Answered here, not thrown: plugins' routes (the dashboard) have error handlers of their own.
      return sendError(error, request, reply);
    }
  });
}

/** Route options of a route any key with the `read` scope may call, taking no query. */
export const READ = { config: { scope: 'read' } } satisfies { config: { scope: RouteScope } };
