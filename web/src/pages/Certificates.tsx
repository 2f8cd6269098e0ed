import { useEffect, useRef, useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useApi, useCapability } from '../api/context';
import { CERT_STATUSES } from '../api/types';
import type { Certificate } from '../api/types';
import { Link, navigate, useQueryState } from '../lib/router';
import { daysUntil, expiryLabel, expiryTone, formatDate, plural } from '../lib/format';
import { DataTable } from '../components/DataTable';
import { Chips, EmptyState, ErrorBox, PageHeader, Pagination, Panel, Spinner, StatusBadge } from '../components/ui';
import { useRefOptions } from '../components/SchemaForm';
import { certificateListParams } from '../lib/certificateList';
import { RevokeDialog, useRenew } from '../components/CertActions';

const WITHIN = [
  ['', 'Any expiry'],
  ['7', 'Expiring within 7 days'],
  ['30', 'Expiring within 30 days'],
  ['90', 'Expiring within 90 days'],
] as const;

/** Bulk actions; asks the server's route table about revocation only once something is selected. */
function BulkBar({ count, busy, onRenew, onRevoke, onClear }: { count: number; busy: boolean; onRenew: () => void; onRevoke: () => void; onClear: () => void }) {
  const canRevoke = useCapability('revoke');
  return (
    <div className="bulkbar" role="region" aria-label="Bulk actions">
      <strong>{count} selected</strong>
      <button className="btn small" disabled={busy} onClick={onRenew}>
        Renew selected
      </button>
      <button
        className="btn small danger"
        disabled={canRevoke === false}
        title={canRevoke === false ? 'Revocation is not available on this server' : undefined}
        onClick={onRevoke}
      >
        Revoke selected
      </button>
      {canRevoke === false && <span className="muted small">Revocation: not available on this server.</span>}
      <button className="btn ghost small" onClick={onClear}>
        Clear selection
      </button>
    </div>
  );
}

export function Certificates() {
  const api = useApi();
  const [q, setQ] = useQueryState();
  const { page, perPage, sort, filters, within, status } = certificateListParams(q);
  // `within` is re-evaluated each render; round it so the query key is stable for a minute.
  const keyFilters = { ...filters, expires_before: within ? `within:${within}` : filters.expires_before, expires_after: within ? 'now' : filters.expires_after };
  const list = useQuery({
    queryKey: ['certificates', 'list', { page, perPage, sort, ...keyFilters }],
    queryFn: ({ signal }) => api.list<Certificate>('certificates', { page, perPage, sort, filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 5_000,
  });
  const issuers = useRefOptions('issuers');
  const renew = useRenew();
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [revoking, setRevoking] = useState<string[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [cn, setCn] = useState(q.get('common_name') ?? '');
  const marked = useRef(false);

  useEffect(() => {
    if (list.data && list.data.data.length > 0 && !marked.current) {
      marked.current = true;
      performance.mark('certctl:certificates-rows');
    }
  }, [list.data]);

  const extra = (['team_id', 'owner_id', 'profile_id'] as const).filter((k) => !!filters[k]);
  const hasFilters =
    status.length > 0 || !!within || !!filters.environment || !!filters.issuer_id || !!filters.common_name || !!q.get('expires_before') || !!q.get('expires_after') || extra.length > 0;
  const setFilter = (patch: Record<string, string | null>) => {
    setSelected(new Set());
    setQ({ ...patch, page: null });
  };
  const ids = [...selected];
  const rows = list.data?.data ?? [];

  return (
    <>
      <PageHeader
        title="Certificates"
        subtitle={list.data ? plural(list.data.total, 'certificate') + (hasFilters ? ' match the filters' : '') : undefined}
        actions={
          <Link to="/certificates/new" className="btn primary">
            New certificate
          </Link>
        }
      />
      <Panel>
        <div className="filters">
          <Chips label="Status" options={CERT_STATUSES} selected={status} onChange={(s) => setFilter({ status: s.join(',') || null })} />
          <div className="filter-row">
            <select aria-label="Expiry window" value={within} onChange={(e) => setFilter({ within: e.target.value || null, expires_before: null, expires_after: null })}>
              {WITHIN.map(([v, l]) => (
                <option key={v} value={v}>
                  {l}
                </option>
              ))}
            </select>
            <select aria-label="Issuer" value={filters.issuer_id ?? ''} onChange={(e) => setFilter({ issuer_id: e.target.value || null })}>
              <option value="">All issuers</option>
              {(issuers.data?.data ?? []).map((i) => (
                <option key={i.id} value={i.id}>
                  {i.name ?? i.id}
                </option>
              ))}
            </select>
            <input
              aria-label="Environment"
              placeholder="Environment (e.g. production)"
              defaultValue={filters.environment ?? ''}
              onKeyDown={(e) => e.key === 'Enter' && setFilter({ environment: (e.target as HTMLInputElement).value })}
              onBlur={(e) => e.target.value !== (filters.environment ?? '') && setFilter({ environment: e.target.value })}
            />
            <form
              className="inline"
              onSubmit={(e) => {
                e.preventDefault();
                setFilter({ common_name: cn.trim() || null });
              }}
            >
              <input aria-label="Common name" placeholder="Exact common name" value={cn} onChange={(e) => setCn(e.target.value)} />
              <button className="btn small" type="submit">
                Find
              </button>
            </form>
            {extra.map((k) => (
              <span className="tag" key={k}>
                {k.replace('_id', '')} {filters[k]}{' '}
                <button className="link" onClick={() => setFilter({ [k]: null })} aria-label={`Remove ${k} filter`}>
                  ×
                </button>
              </span>
            ))}
            {(q.get('expires_before') || q.get('expires_after')) && !within && (
              <span className="tag">
                expiring {q.get('expires_after') ? `after ${q.get('expires_after')?.slice(0, 10)} ` : ''}
                {q.get('expires_before') ? `before ${q.get('expires_before')?.slice(0, 10)}` : ''}{' '}
                <button className="link" onClick={() => setFilter({ expires_before: null, expires_after: null })} aria-label="Remove expiry range">
                  ×
                </button>
              </span>
            )}
            {hasFilters && (
              <button
                className="btn ghost small"
                onClick={() => {
                  setCn('');
                  setFilter({ status: null, within: null, environment: null, issuer_id: null, common_name: null, expires_before: null, expires_after: null, team_id: null, owner_id: null, profile_id: null });
                }}
              >
                Clear filters
              </button>
            )}
          </div>
        </div>
        {ids.length > 0 && (
          <BulkBar
            count={ids.length}
            busy={busy}
            onRenew={async () => {
              setBusy(true);
              if (await renew(ids)) setSelected(new Set());
              setBusy(false);
            }}
            onRevoke={() => setRevoking(ids)}
            onClear={() => setSelected(new Set())}
          />
        )}
        {list.isError && <ErrorBox error={list.error} what="certificates" />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && !hasFilters && (
          <EmptyState
            title="No certificates yet"
            action={
              <Link to="/certificates/new" className="btn primary">
                Create a certificate
              </Link>
            }
          >
            Add a certificate and certctl issues it through its issuer, deploys it to mapped targets and renews it before it
            expires.
          </EmptyState>
        )}
        {list.data && rows.length === 0 && hasFilters && (
          <EmptyState title="No certificates match these filters">Widen or clear the filters above.</EmptyState>
        )}
        {rows.length > 0 && (
          <>
            <DataTable<Certificate>
              caption="Certificates"
              rows={rows}
              rowKey={(c) => c.id}
              busy={list.isFetching && list.isPlaceholderData}
              sort={sort}
              onSort={(s) => setQ({ sort: s, page: null })}
              selected={selected}
              onSelect={setSelected}
              onRowClick={(c) => navigate(`/certificates/${encodeURIComponent(c.id)}`)}
              columns={[
                {
                  key: 'name',
                  header: 'Name',
                  sortField: 'name',
                  render: (c) => (
                    <Link to={`/certificates/${encodeURIComponent(c.id)}`} className="strong">
                      {c.name}
                    </Link>
                  ),
                },
                { key: 'cn', header: 'Common name', sortField: 'common_name', className: 'hide-sm', render: (c) => <span className="mono">{c.common_name}</span> },
                { key: 'status', header: 'Status', sortField: 'status', render: (c) => <StatusBadge status={c.status} /> },
                {
                  key: 'expires',
                  header: 'Expires',
                  sortField: 'expires_at',
                  render: (c) =>
                    c.expires_at ? (
                      <span className={`tone-text-${expiryTone(daysUntil(c.expires_at))}`} title={c.expires_at}>
                        {formatDate(c.expires_at)} <span className="muted small">({expiryLabel(c.expires_at)})</span>
                      </span>
                    ) : (
                      <span className="muted">not issued</span>
                    ),
                },
                { key: 'env', header: 'Environment', sortField: 'environment', className: 'hide-sm', render: (c) => c.environment ?? <span className="muted">—</span> },
                { key: 'issuer', header: 'Issuer', render: (c) => c.issuer_id ?? <span className="muted">—</span>, className: 'hide-sm' },
              ]}
            />
            <Pagination
              page={page}
              perPage={perPage}
              total={list.data?.total ?? 0}
              onPage={(p) => setQ({ page: p === 1 ? null : p })}
              onPerPage={(n) => setQ({ per_page: n === 50 ? null : n, page: null })}
            />
          </>
        )}
      </Panel>
      {revoking && <RevokeDialog ids={revoking} onClose={() => setRevoking(null)} onDone={() => setSelected(new Set())} />}
    </>
  );
}
