import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import type { Agent } from '../api/types';
import { Link, navigate, useQueryState } from '../lib/router';
import { heartbeatHealth, heartbeatTone, plural, relativeTime } from '../lib/format';
import { DataTable } from '../components/DataTable';
import { Badge, Chips, EmptyState, ErrorBox, PageHeader, Pagination, Panel, Spinner, StatusBadge } from '../components/ui';

export function HeartbeatBadge({ at }: { at: string | null }) {
  const h = heartbeatHealth(at);
  return (
    <Badge tone={heartbeatTone(h)} title={at ?? 'no heartbeat yet'}>
      {h === 'never' ? 'no heartbeat' : `${h} · ${relativeTime(at)}`}
    </Badge>
  );
}

export function Agents() {
  const api = useApi();
  const [q, setQ] = useQueryState();
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = Number(q.get('per_page') ?? 50) || 50;
  const sort = q.get('sort') ?? 'name';
  const status = (q.get('status') ?? '').split(',').filter(Boolean);
  const filters = { status, os: q.get('os') ?? undefined };
  const list = useQuery({
    queryKey: ['agents', 'list', { page, perPage, sort, ...filters }],
    queryFn: ({ signal }) => api.list<Agent>('agents', { page, perPage, sort, filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
  const rows = list.data?.data ?? [];
  const origin = window.location.origin;
  return (
    <>
      <PageHeader title="Agents" subtitle={list.data ? plural(list.data.total, 'agent') : undefined} />
      <Panel>
        <div className="filters">
          <Chips label="Status" options={['Online', 'Degraded', 'Offline']} selected={status} onChange={(s) => setQ({ status: s.join(',') || null, page: null })} />
        </div>
        {list.isError && <ErrorBox error={list.error} what="agents" />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && status.length === 0 && (
          <EmptyState title="No agents registered">
            <p>
              Agents generate private keys on your hosts and deploy certificates. Run one on each host that serves TLS:
            </p>
            <pre className="mono code-block">
              {`certctl-agent --server-url ${origin} \\\n  --agent-id web-01 --key-dir /var/lib/certctl/keys`}
            </pre>
            <p className="muted small">It registers with CERTCTL_AGENT_BOOTSTRAP_TOKEN (or an admin key) and appears here after its first heartbeat.</p>
          </EmptyState>
        )}
        {list.data && rows.length === 0 && status.length > 0 && <EmptyState title="No agents match this filter" />}
        {rows.length > 0 && (
          <>
            <DataTable<Agent>
              rows={rows}
              rowKey={(a) => a.id}
              sort={sort}
              onSort={(s) => setQ({ sort: s })}
              onRowClick={(a) => navigate(`/agents/${encodeURIComponent(a.id)}`)}
              columns={[
                { key: 'name', header: 'Name', sortField: 'name', render: (a) => <Link to={`/agents/${encodeURIComponent(a.id)}`} className="strong">{a.name}</Link> },
                { key: 'host', header: 'Hostname', sortField: 'hostname', render: (a) => a.hostname ?? <span className="muted">—</span> },
                { key: 'status', header: 'Status', sortField: 'status', render: (a) => <StatusBadge status={a.status} /> },
                { key: 'os', header: 'OS / arch', sortField: 'os', render: (a) => [a.os, a.architecture].filter(Boolean).join(' / ') || <span className="muted">—</span> },
                { key: 'version', header: 'Version', sortField: 'version', className: 'hide-sm', render: (a) => a.version ?? '—' },
                { key: 'ip', header: 'IP', className: 'hide-sm', render: (a) => a.ip_address ?? '—' },
                { key: 'hb', header: 'Heartbeat', sortField: 'last_heartbeat_at', render: (a) => <HeartbeatBadge at={a.last_heartbeat_at} /> },
              ]}
            />
            <Pagination page={page} perPage={perPage} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} onPerPage={(n) => setQ({ per_page: n, page: null })} />
          </>
        )}
      </Panel>
    </>
  );
}
