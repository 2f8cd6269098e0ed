import { Link } from '../lib/router';
import { Badge, EmptyState, ErrorBox, PageHeader, Panel, Spinner, Unavailable } from '../components/ui';
import { usePlugins } from '../components/ResourcePage';
import { usableSchema } from '../lib/schema';

/** A capability set as "kind: a, b" lines: from a map of kind → list (the server's shape) or a plain list. */
function capLines(c: unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const list = (v: unknown): string[] =>
    Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : v && typeof v === 'object' ? Object.keys(v as object) : v ? [String(v)] : [];
  if (Array.isArray(c)) out.set('', list(c));
  else if (c && typeof c === 'object') for (const [k, v] of Object.entries(c as Record<string, unknown>)) out.set(k, list(v));
  return out;
}

/** `{requested, granted}` (the server's shape) or a plain capability set. */
function caps(c: unknown): { requested: Map<string, string[]>; granted: Map<string, string[]> | null } {
  if (c && typeof c === 'object' && !Array.isArray(c) && ('requested' in c || 'granted' in c)) {
    const o = c as { requested?: unknown; granted?: unknown };
    return { requested: capLines(o.requested), granted: o.granted === undefined ? null : capLines(o.granted) };
  }
  return { requested: capLines(c), granted: null };
}

export function Plugins() {
  const { available, query, plugins } = usePlugins();
  return (
    <>
      <PageHeader title="Plugins" subtitle="Connectors loaded by the server: sandboxed WebAssembly components for issuers, targets and notifiers." />
      {available === undefined && <Spinner />}
      {available === false && (
        <Panel>
          <Unavailable what="the plugin list" />
          <p className="muted">This server does not expose <code>GET /api/v1/plugins</code>. Built-in connectors still work.</p>
        </Panel>
      )}
      {available && query.isLoading && <Spinner />}
      {available && query.isError && <ErrorBox error={query.error} what="plugins" />}
      {available && query.data && plugins.length === 0 && (
        <Panel>
          <EmptyState title="No plugins loaded">
            Drop a connector component (<code>.wasm</code>) into the server's <code>CERTCTL_PLUGIN_DIR</code>; it is discovered at start
            and on reload. Start from <code>plugins/template</code>.
          </EmptyState>
        </Panel>
      )}
      {plugins.length > 0 && (
        <div className="card-grid">
          {plugins.map((p) => {
            const schema = usableSchema(p.config_schema);
            return (
              <section key={`${p.kind}-${p.id}`} className="panel plugin" data-plugin={p.id}>
                <div className="panel-head">
                  <h2>{p.id}</h2>
                  <span className="badge tone-info">{p.kind ?? 'unknown kind'}</span>
                </div>
                <p className="muted small">
                  version {p.version ?? 'unknown'}
                  {typeof p.wit === 'string' ? ` · WIT ${p.wit}` : ''}{' '}
                  {typeof p.status === 'string' && <Badge tone={p.status === 'loaded' ? 'ok' : 'bad'}>{p.status}</Badge>}
                </p>
                {typeof p.description === 'string' && p.description && <p>{p.description}</p>}
                {p.error && typeof p.error === 'object' ? (
                  <div className="alert tone-bad" role="alert">
                    {String((p.error as { message?: unknown }).message ?? JSON.stringify(p.error))}
                  </div>
                ) : null}
                {(() => {
                  const c = caps(p.capabilities);
                  const kinds = [...new Set([...c.requested.keys(), ...(c.granted?.keys() ?? [])])].filter(
                    (k) => (c.requested.get(k)?.length ?? 0) + (c.granted?.get(k)?.length ?? 0) > 0,
                  );
                  if (kinds.length === 0) return <p className="muted small">Requests no capabilities.</p>;
                  return (
                    <table className="table caps small">
                      <thead>
                        <tr>
                          <th>Capability</th>
                          <th>Requested</th>
                          {c.granted && <th>Granted</th>}
                        </tr>
                      </thead>
                      <tbody>
                        {kinds.map((k) => (
                          <tr key={k}>
                            <td>{k || '—'}</td>
                            <td>{(c.requested.get(k) ?? []).join(', ') || '—'}</td>
                            {c.granted && (
                              <td className={(c.granted.get(k)?.length ?? 0) === 0 ? 'tone-text-warn' : undefined}>{(c.granted.get(k) ?? []).join(', ') || 'none'}</td>
                            )}
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  );
                })()}
                {schema ? (
                  <details>
                    <summary>Configuration fields ({Object.keys(schema.properties ?? {}).length})</summary>
                    <ul className="plain small">
                      {Object.entries(schema.properties ?? {}).map(([k, s]) => (
                        <li key={k}>
                          <code>{k}</code> <span className="muted">{String(s.type ?? '')}</span>
                          {(schema.required ?? []).includes(k) && <span className="req"> *</span>}
                          {s.description && <span className="muted"> — {s.description}</span>}
                        </li>
                      ))}
                    </ul>
                    <p className="small">
                      Forms for {(p.kind ?? '').includes('issuer') ? <Link to="/issuers">issuers</Link> : (p.kind ?? '').includes('target') ? <Link to="/targets">targets</Link> : 'this kind'} of type <code>{p.id}</code> are generated from this schema.
                    </p>
                  </details>
                ) : (
                  <p className="muted small">No configuration schema.</p>
                )}
              </section>
            );
          })}
        </div>
      )}
    </>
  );
}
