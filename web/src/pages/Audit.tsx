import { useState } from 'react';
import type { FormEvent } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { MAX_PER_PAGE, describeError } from '../api/client';
import type { ApiCall, AuditEvent } from '../api/types';
import { Link, useQueryState } from '../lib/router';
import { formatDateTime, humanize, localInputToIso, plural } from '../lib/format';
import { download, toCsv } from '../lib/csv';
import type { CsvColumn } from '../lib/csv';
import { DataTable } from '../components/DataTable';
import { Badge, EmptyState, ErrorBox, PageHeader, Pagination, Panel, Spinner, useToast } from '../components/ui';

const RESOURCE_TYPES = ['certificate', 'issuer', 'target', 'agent', 'job', 'policy', 'profile', 'renewal_policy', 'team', 'owner', 'notification', 'api_key', 'bulk_revocation', 'plugin'];
const EXPORT_CAP = 50_000;

const EVENT_COLUMNS: CsvColumn<AuditEvent>[] = [
  { header: 'id', value: (e) => e.id },
  { header: 'timestamp', value: (e) => e.timestamp },
  { header: 'actor', value: (e) => e.actor },
  { header: 'actor_type', value: (e) => e.actor_type },
  { header: 'action', value: (e) => e.action },
  { header: 'resource_type', value: (e) => e.resource_type },
  { header: 'resource_id', value: (e) => e.resource_id },
  { header: 'details', value: (e) => e.details ?? {} },
];
const CALL_COLUMNS: CsvColumn<ApiCall>[] = [
  { header: 'id', value: (c) => c.id },
  { header: 'timestamp', value: (c) => c.timestamp },
  { header: 'request_id', value: (c) => c.request_id },
  { header: 'method', value: (c) => c.method },
  { header: 'path', value: (c) => c.path },
  { header: 'actor', value: (c) => c.actor },
  { header: 'status', value: (c) => c.status },
  { header: 'latency_ms', value: (c) => c.latency_ms },
  { header: 'body_sha256', value: (c) => c.body_sha256 },
];

function resourceLink(type: string, id: string) {
  const base: Record<string, string> = { certificate: '/certificates/', job: '/jobs/', agent: '/agents/' };
  return base[type] ? <Link to={`${base[type]}${encodeURIComponent(id)}`}>{id}</Link> : <code>{id}</code>;
}

/** `2026-11-26T01:23:43.455Z` → the `datetime-local` input's format, in local time. */
function isoToLocalInput(iso: string | null): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

export function Audit() {
  const api = useApi();
  const toast = useToast();
  const [q, setQ] = useQueryState();
  const tab = q.get('tab') === 'api-calls' ? 'api-calls' : 'events';
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = Number(q.get('per_page') ?? 50) || 50;
  const fields = tab === 'events' ? ['actor', 'action', 'resource_type', 'resource_id', 'since', 'until'] : ['actor', 'method', 'path', 'status', 'since', 'until'];
  const filters: Record<string, string | undefined> = {};
  for (const f of fields) filters[f] = q.get(f) ?? undefined;
  const [draft, setDraft] = useState<Record<string, string>>(() => {
    const d: Record<string, string> = {};
    for (const f of fields) d[f] = f === 'since' || f === 'until' ? isoToLocalInput(q.get(f)) : (q.get(f) ?? '');
    return d;
  });
  const [exporting, setExporting] = useState<string | null>(null);
  const resource = tab === 'events' ? 'audit' : 'audit/api-calls';

  const list = useQuery({
    queryKey: ['audit', tab, { page, perPage, ...filters }],
    queryFn: ({ signal }) => api.list<AuditEvent | ApiCall>(resource, { page, perPage, sort: '-timestamp', filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });

  function apply(e: FormEvent) {
    e.preventDefault();
    const patch: Record<string, string | null> = { page: null };
    for (const f of fields) {
      const v = (draft[f] ?? '').trim();
      patch[f] = f === 'since' || f === 'until' ? localInputToIso(v) : v || null;
    }
    setQ(patch);
  }

  async function exportAll(format: 'csv' | 'json') {
    setExporting(`Fetching 0 / …`);
    try {
      const rows: (AuditEvent | ApiCall)[] = [];
      let total = Infinity;
      for (let p = 1; rows.length < Math.min(total, EXPORT_CAP); p++) {
        const r = await api.list<AuditEvent | ApiCall>(resource, { page: p, perPage: MAX_PER_PAGE, sort: '-timestamp', filters });
        total = r.total;
        rows.push(...r.data);
        setExporting(`Fetching ${rows.length.toLocaleString('en-US')} / ${Math.min(total, EXPORT_CAP).toLocaleString('en-US')}`);
        if (r.data.length === 0) break;
      }
      const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
      const name = `certctl-${tab === 'events' ? 'audit' : 'api-calls'}-${stamp}`;
      if (format === 'csv') {
        const csv = tab === 'events' ? toCsv(rows as AuditEvent[], EVENT_COLUMNS) : toCsv(rows as ApiCall[], CALL_COLUMNS);
        download(`${name}.csv`, csv, 'text/csv;charset=utf-8');
      } else {
        download(`${name}.json`, `${JSON.stringify(rows, null, 2)}\n`, 'application/json');
      }
      toast(`Exported ${plural(rows.length, 'row')}${total > EXPORT_CAP ? ` (first ${EXPORT_CAP.toLocaleString('en-US')} of ${total.toLocaleString('en-US')}; narrow the filters for the rest)` : ''}.`);
    } catch (e) {
      toast(`Export failed: ${describeError(e)}`, 'bad');
    } finally {
      setExporting(null);
    }
  }

  const hasFilters = fields.some((f) => !!filters[f]);
  const rows = list.data?.data ?? [];
  return (
    <>
      <PageHeader
        title="Audit log"
        subtitle="Append-only: every change and every API call. The database refuses edits to it."
        actions={
          <>
            <button className="btn" disabled={!!exporting || rows.length === 0} onClick={() => exportAll('csv')}>
              Export CSV
            </button>
            <button className="btn" disabled={!!exporting || rows.length === 0} onClick={() => exportAll('json')}>
              Export JSON
            </button>
          </>
        }
      />
      {exporting && (
        <div className="alert tone-info" role="status">
          <span className="spinner" aria-hidden="true" /> {exporting}
        </div>
      )}
      <Panel>
        <div className="tabs" role="tablist" aria-label="Log">
          <button role="tab" aria-selected={tab === 'events'} className={`tab ${tab === 'events' ? 'active' : ''}`} onClick={() => setQ({ tab: null, page: null, method: null, path: null, status: null })}>
            Events
          </button>
          <button role="tab" aria-selected={tab === 'api-calls'} className={`tab ${tab === 'api-calls' ? 'active' : ''}`} onClick={() => setQ({ tab: 'api-calls', page: null, action: null, resource_type: null, resource_id: null })}>
            API calls
          </button>
        </div>
        <form className="filters filter-grid" onSubmit={apply} key={tab}>
          {fields.map((f) => (
            <div className="field" key={f}>
              <label htmlFor={`audit-${f}`}>{humanize(f)}</label>
              {f === 'resource_type' ? (
                <select id={`audit-${f}`} value={draft[f] ?? ''} onChange={(e) => setDraft({ ...draft, [f]: e.target.value })}>
                  <option value="">Any</option>
                  {RESOURCE_TYPES.map((t) => (
                    <option key={t} value={t}>
                      {t}
                    </option>
                  ))}
                </select>
              ) : (
                <input
                  id={`audit-${f}`}
                  type={f === 'since' || f === 'until' ? 'datetime-local' : 'text'}
                  value={draft[f] ?? ''}
                  placeholder={f === 'action' ? 'certificate_created' : f === 'actor' ? 'admin' : f === 'method' ? 'POST' : undefined}
                  onChange={(e) => setDraft({ ...draft, [f]: e.target.value })}
                />
              )}
            </div>
          ))}
          <div className="form-actions">
            <button className="btn primary" type="submit">
              Apply filters
            </button>
            {hasFilters && (
              <button
                className="btn ghost"
                type="button"
                onClick={() => {
                  setDraft({});
                  setQ(Object.fromEntries([...fields.map((f) => [f, null]), ['page', null]]));
                }}
              >
                Clear
              </button>
            )}
          </div>
        </form>
        {list.isError && <ErrorBox error={list.error} what="the audit log" />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && (
          <EmptyState title={hasFilters ? 'No entries match these filters' : 'The log is empty'}>
            {hasFilters ? 'Filters match exact values; widen the time range or clear a filter.' : 'Entries appear as soon as anything changes.'}
          </EmptyState>
        )}
        {rows.length > 0 && tab === 'events' && (
          <DataTable<AuditEvent>
            caption="Audit events"
            rows={rows as AuditEvent[]}
            rowKey={(e) => e.id}
            columns={[
              { key: 'ts', header: 'Time', render: (e) => <span title={e.timestamp}>{formatDateTime(e.timestamp)}</span> },
              { key: 'actor', header: 'Actor', render: (e) => <>{e.actor} <Badge tone="muted">{e.actor_type}</Badge></> },
              { key: 'action', header: 'Action', render: (e) => <code>{e.action}</code> },
              { key: 'res', header: 'Resource', render: (e) => <>{e.resource_type} {resourceLink(e.resource_type, e.resource_id)}</> },
              {
                key: 'details',
                header: 'Details',
                className: 'details-cell',
                render: (e) =>
                  e.details && Object.keys(e.details).length > 0 ? (
                    <details>
                      <summary>{Object.keys(e.details).slice(0, 3).join(', ')}{Object.keys(e.details).length > 3 ? '…' : ''}</summary>
                      <pre className="mono small">{JSON.stringify(e.details, null, 2)}</pre>
                    </details>
                  ) : (
                    <span className="muted">—</span>
                  ),
              },
            ]}
          />
        )}
        {rows.length > 0 && tab === 'api-calls' && (
          <DataTable<ApiCall>
            caption="API calls"
            rows={rows as ApiCall[]}
            rowKey={(c) => c.id}
            columns={[
              { key: 'ts', header: 'Time', render: (c) => formatDateTime(c.timestamp) },
              { key: 'actor', header: 'Actor', render: (c) => c.actor },
              { key: 'req', header: 'Request', render: (c) => <code>{`${c.method} ${c.path}`}</code> },
              { key: 'status', header: 'Status', render: (c) => <Badge tone={c.status >= 500 ? 'bad' : c.status >= 400 ? 'warn' : 'ok'}>{c.status}</Badge> },
              { key: 'lat', header: 'Latency', render: (c) => `${c.latency_ms} ms` },
              { key: 'rid', header: 'Request id', className: 'hide-sm', render: (c) => <code className="small">{c.request_id}</code> },
            ]}
          />
        )}
        {rows.length > 0 && (
          <Pagination page={page} perPage={perPage} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} onPerPage={(n) => setQ({ per_page: n, page: null })} />
        )}
      </Panel>
    </>
  );
}
