import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { JOB_STATUSES, JOB_TYPES } from '../api/types';
import type { Job } from '../api/types';
import { Link, navigate, useQueryState } from '../lib/router';
import { plural, relativeTime } from '../lib/format';
import { DataTable } from '../components/DataTable';
import { Chips, EmptyState, ErrorBox, PageHeader, Pagination, Panel, Spinner, StatusBadge } from '../components/ui';
import { JobActions } from '../components/JobActions';

export function Jobs() {
  const api = useApi();
  const [q, setQ] = useQueryState();
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = Number(q.get('per_page') ?? 50) || 50;
  const sort = q.get('sort') ?? '-created_at';
  const status = (q.get('status') ?? '').split(',').filter(Boolean);
  const filters = { status, type: q.get('type') ?? undefined, certificate_id: q.get('certificate_id') ?? undefined, agent_id: q.get('agent_id') ?? undefined };
  const list = useQuery({
    queryKey: ['jobs', 'list', { page, perPage, sort, ...filters }],
    queryFn: ({ signal }) => api.list<Job>('jobs', { page, perPage, sort, filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 2_000,
  });
  const hasFilters = status.length > 0 || !!filters.type || !!filters.certificate_id || !!filters.agent_id;
  const rows = list.data?.data ?? [];
  return (
    <>
      <PageHeader title="Jobs" subtitle={list.data ? `${plural(list.data.total, 'job')} · updates live` : undefined} />
      <Panel>
        <div className="filters">
          <Chips label="Status" options={JOB_STATUSES} selected={status} onChange={(s) => setQ({ status: s.join(',') || null, page: null })} />
          <div className="filter-row">
            <select aria-label="Job type" value={filters.type ?? ''} onChange={(e) => setQ({ type: e.target.value || null, page: null })}>
              <option value="">All types</option>
              {JOB_TYPES.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
            {filters.certificate_id && (
              <span className="tag">
                certificate {filters.certificate_id}{' '}
                <button className="link" onClick={() => setQ({ certificate_id: null })} aria-label="Remove certificate filter">
                  ×
                </button>
              </span>
            )}
            {filters.agent_id && (
              <span className="tag">
                agent {filters.agent_id}{' '}
                <button className="link" onClick={() => setQ({ agent_id: null })} aria-label="Remove agent filter">
                  ×
                </button>
              </span>
            )}
          </div>
        </div>
        {list.isError && <ErrorBox error={list.error} what="jobs" />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && (
          <EmptyState title={hasFilters ? 'No jobs match these filters' : 'No jobs yet'}>
            {hasFilters ? (
              'Clear a filter to see more.'
            ) : (
              <>
                Jobs are created when a <Link to="/certificates">certificate</Link> is issued, renewed or deployed.
              </>
            )}
          </EmptyState>
        )}
        {rows.length > 0 && (
          <>
            <DataTable<Job>
              rows={rows}
              rowKey={(j) => j.id}
              sort={sort}
              onSort={(s) => setQ({ sort: s })}
              onRowClick={(j) => navigate(`/jobs/${encodeURIComponent(j.id)}`)}
              columns={[
                { key: 'id', header: 'Job', sortField: 'id', render: (j) => <Link to={`/jobs/${encodeURIComponent(j.id)}`}>{j.id}</Link> },
                { key: 'type', header: 'Type', sortField: 'type', render: (j) => j.type },
                { key: 'status', header: 'Status', sortField: 'status', render: (j) => <StatusBadge status={j.status} /> },
                { key: 'cert', header: 'Certificate', render: (j) => <Link to={`/certificates/${encodeURIComponent(j.certificate_id)}`}>{j.certificate_id}</Link> },
                { key: 'attempts', header: 'Attempts', className: 'hide-sm', render: (j) => `${j.attempts}/${j.max_attempts}` },
                { key: 'created', header: 'Created', sortField: 'created_at', render: (j) => <span title={j.created_at}>{relativeTime(j.created_at)}</span> },
                { key: 'actions', header: '', className: 'right', render: (j) => <JobActions job={j} small /> },
              ]}
            />
            <Pagination page={page} perPage={perPage} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} onPerPage={(n) => setQ({ per_page: n, page: null })} />
          </>
        )}
      </Panel>
    </>
  );
}
