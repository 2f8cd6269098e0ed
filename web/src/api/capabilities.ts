// Which optional endpoints this server has, read from its OpenAPI document (generated from
// the server's own route table), so the dashboard can say "not available on this server"
// without probing endpoints that may not exist.

export type RouteSet = ReadonlySet<string>;

/** "METHOD /path/{param}" for every operation of an OpenAPI document. */
export function routesOf(doc: unknown): Set<string> {
  const out = new Set<string>();
  const paths = (doc as { paths?: Record<string, Record<string, unknown>> } | null)?.paths;
  if (!paths || typeof paths !== 'object') return out;
  for (const [path, ops] of Object.entries(paths)) {
    if (!ops || typeof ops !== 'object') continue;
    for (const method of Object.keys(ops)) {
      out.add(`${method.toUpperCase()} ${normalize(path)}`);
    }
  }
  return out;
}

/** Parameter names do not matter: `/x/{id}` and `/x/{cert_id}` are the same route. */
export function normalize(path: string): string {
  return path.replace(/\{[^}]+\}/g, '{}');
}

export function hasRoute(routes: RouteSet | undefined, method: string, path: string): boolean | undefined {
  if (!routes) return undefined;
  const p = normalize(path);
  if (method === '*') {
    for (const r of routes) if (r.endsWith(` ${p}`)) return true;
    return false;
  }
  return routes.has(`${method.toUpperCase()} ${p}`);
}

export const OPTIONAL = {
  revoke: ['POST', '/api/v1/certificates/{id}/revoke'],
  bulkRevoke: ['POST', '/api/v1/certificates/bulk-revoke'],
  exportPem: ['GET', '/api/v1/certificates/{id}/export/pem'],
  plugins: ['GET', '/api/v1/plugins'],
  notificationRead: ['POST', '/api/v1/notifications/{id}/read'],
  notificationRequeue: ['POST', '/api/v1/notifications/{id}/requeue'],
  notifiers: ['GET', '/api/v1/notifiers'],
  digestPreview: ['GET', '/api/v1/digest/preview'],
  digestSend: ['POST', '/api/v1/digest/send'],
  crl: ['*', '/.well-known/pki/crl/{issuer_id}'],
  ocsp: ['*', '/.well-known/pki/ocsp/{issuer_id}'],
} as const;
export type Optional = keyof typeof OPTIONAL;
