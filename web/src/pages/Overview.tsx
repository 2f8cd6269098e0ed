import { useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { CERT_STATUSES } from '../api/types';
import type { Job } from '../api/types';
import { Link, navigate } from '../lib/router';
import { DAY_MS, humanize, plural, relativeTime, statusTone } from '../lib/format';
import { DataTable } from '../components/DataTable';
import { EmptyState, ErrorBox, PageHeader, Panel, Spinner, StatusBadge } from '../components/ui';
import { ExpiryChart } from '../components/ExpiryChart';
import type { Bucket } from '../components/ExpiryChart';

/** Statuses of certificates that still matter for expiry. */
const LIVE = ['Active', 'Expiring', 'Expired', 'RenewalInProgress', 'Failed', 'Pending'];
/** 13 weeks: covers the default 90-day lifetime, so a fresh certificate is on the chart. */
const WEEKS = 13;

function useStatusCounts() {
  const api = useApi();
  return useQuery({
    queryKey: ['certificates', 'status-counts'],
    queryFn: async ({ signal }) => {
      const counts = await Promise.all(CERT_STATUSES.map((s) => api.count('certificates', { status: s }, signal)));
      return Object.fromEntries(CERT_STATUSES.map((s, i) => [s, counts[i]])) as Record<string, number>;
    },
    refetchInterval: 10_000,
  });
}

function useTimeline() {
  const api = useApi();
  return useQuery({
    queryKey: ['certificates', 'expiry-timeline'],
    queryFn: async ({ signal }) => {
      const start = new Date();
      start.setUTCHours(0, 0, 0, 0);
      const t0 = start.getTime();
      const edges = Array.from({ length: WEEKS + 1 }, (_, i) => new Date(t0 + i * 7 * DAY_MS).toISOString());
      const overdue = api.count('certificates', { status: LIVE, expires_before: edges[0] }, signal);
      const weeks = Array.from({ length: WEEKS }, (_, i) =>
        api.count('certificates', { status: LIVE, expires_after: edges[i], expires_before: edges[i + 1] }, signal),
      );
      const [o, ...w] = await Promise.all([overdue, ...weeks]);
      const buckets: Bucket[] = [
        {
          key: 'overdue',
          label: 'past',
          count: o,
          tone: 'bad',
          href: `/certificates?status=${LIVE.join(',')}&expires_before=${encodeURIComponent(edges[0])}`,
          title: `${plural(o, 'certificate')} already past expiry`,
        },
        ...w.map((count, i) => ({
          key: `w${i}`,
          label: i === 0 ? 'this' : `+${i}`,
          count,
          tone: (i < 1 ? 'bad' : i < 4 ? 'warn' : 'ok') as Bucket['tone'],
          href: `/certificates?status=${LIVE.join(',')}&expires_after=${encodeURIComponent(edges[i])}&expires_before=${encodeURIComponent(edges[i + 1])}`,
          title: `${plural(count, 'certificate')} expiring ${edges[i].slice(0, 10)} – ${edges[i + 1].slice(0, 10)}`,
        })),
      ];
      return buckets;
    },
    refetchInterval: 60_000,
  });
}

function useAttention() {
  const api = useApi();
  return useQuery({
    queryKey: ['overview', 'attention'],
    queryFn: async ({ signal }) => {
      const [approval, failed, agents, online, unread, violations] = await Promise.all([
        api.count('jobs', { status: 'AwaitingApproval' }, signal),
        api.count('jobs', { status: 'Failed' }, signal),
        api.count('agents', {}, signal),
        api.count('agents', { status: 'Online' }, signal),
        api.count('notifications', { read: false }, signal),
        api.count('policy-violations', {}, signal),
      ]);
      return { approval, failed, agents, online, unread, violations };
    },
    refetchInterval: 15_000,
  });
}

export function Overview() {
  const api = useApi();
  const counts = useStatusCounts();
  const timeline = useTimeline();
  const attention = useAttention();
  const jobs = useQuery({
    queryKey: ['jobs', 'recent'],
    queryFn: ({ signal }) => api.list<Job>('jobs', { perPage: 8, sort: '-created_at' }, signal),
    refetchInterval: 5_000,
  });

  const total = counts.data ? Object.values(counts.data).reduce((a, b) => a + b, 0) : 0;
  return (
    <>
      <PageHeader
        title="Overview"
        subtitle="Every certificate's state at a glance."
        actions={
          <Link to="/certificates/new" className="btn primary">
            New certificate
          </Link>
        }
      />
      {counts.isError && <ErrorBox error={counts.error} what="certificate counts" />}
      {counts.isLoading && <Spinner />}
      {counts.data && total === 0 && (
        <Panel>
          <EmptyState
            title="No certificates yet"
            action={
              <Link to="/certificates/new" className="btn primary">
                Create your first certificate
              </Link>
            }
          >
            <p>
              certctl is ready: the built-in <Link to="/issuers">Local CA issuer</Link> (<code>iss-local</code>) can sign
              certificates right away. Create one, then map it to a <Link to="/targets">deployment target</Link> served by an{' '}
              <Link to="/agents">agent</Link>.
            </p>
          </EmptyState>
        </Panel>
      )}
      {counts.data && total > 0 && (
        <section className="stat-grid" aria-label="Certificates by status">
          <Link to="/certificates" className="stat total">
            <span className="stat-value" data-testid="count-total">{total.toLocaleString('en-US')}</span>
            <span className="stat-label">Certificates</span>
          </Link>
          {CERT_STATUSES.map((s) => (
            <Link key={s} to={`/certificates?status=${s}`} className={`stat tone-${statusTone(s)}`} data-status={s}>
              <span className="stat-value" data-testid={`count-${s}`}>{(counts.data[s] ?? 0).toLocaleString('en-US')}</span>
              <span className="stat-label">{humanize(s)}</span>
            </Link>
          ))}
        </section>
      )}
      {counts.data && total > 0 && (
        <div className="stackbar" aria-hidden="true">
          {CERT_STATUSES.filter((s) => counts.data[s] > 0).map((s) => (
            <span key={s} className={`seg tone-${statusTone(s)}`} style={{ flexGrow: counts.data[s] }} title={`${humanize(s)}: ${counts.data[s]}`} />
          ))}
        </div>
      )}
      <div className="grid-2">
        <Panel title="Expiry timeline" actions={<span className="muted small">next {WEEKS} weeks</span>}>
          {timeline.isError && <ErrorBox error={timeline.error} what="the expiry timeline" />}
          {timeline.isLoading && <Spinner />}
          {timeline.data &&
            (timeline.data.every((b) => b.count === 0) ? (
              <EmptyState title={`Nothing expires in the next ${WEEKS} weeks`}>
                Certificates appear here as their expiry approaches; renewal starts 30 days ahead by default.
              </EmptyState>
            ) : (
              <ExpiryChart buckets={timeline.data} onSelect={(b) => navigate(b.href)} />
            ))}
        </Panel>
        <Panel title="Needs attention">
          {attention.isError && <ErrorBox error={attention.error} what="attention items" />}
          {attention.data && (
            <ul className="attention">
              <li>
                <Link to="/jobs?status=AwaitingApproval">{plural(attention.data.approval, 'job')} awaiting approval</Link>
              </li>
              <li className={attention.data.failed > 0 ? 'tone-bad' : ''}>
                <Link to="/jobs?status=Failed">{plural(attention.data.failed, 'failed job')}</Link>
              </li>
              <li>
                <Link to="/agents">
                  {attention.data.online} of {plural(attention.data.agents, 'agent')} online
                </Link>
              </li>
              <li>
                <Link to="/notifications?read=false">{plural(attention.data.unread, 'unread notification')}</Link>
              </li>
              <li className={attention.data.violations > 0 ? 'tone-warn' : ''}>
                <Link to="/policies?tab=violations">{plural(attention.data.violations, 'policy violation')}</Link>
              </li>
            </ul>
          )}
        </Panel>
      </div>
      <Panel title="Recent jobs" actions={<Link to="/jobs">All jobs →</Link>}>
        {jobs.isError && <ErrorBox error={jobs.error} what="jobs" />}
        {jobs.data && jobs.data.data.length === 0 && (
          <EmptyState title="No jobs yet">Jobs appear when certificates are issued, renewed or deployed.</EmptyState>
        )}
        {jobs.data && jobs.data.data.length > 0 && (
          <DataTable<Job>
            rows={jobs.data.data}
            rowKey={(j) => j.id}
            onRowClick={(j) => navigate(`/jobs/${encodeURIComponent(j.id)}`)}
            columns={[
              { key: 'id', header: 'Job', render: (j) => <Link to={`/jobs/${encodeURIComponent(j.id)}`}>{j.id}</Link> },
              { key: 'type', header: 'Type', render: (j) => j.type },
              { key: 'status', header: 'Status', render: (j) => <StatusBadge status={j.status} /> },
              {
                key: 'cert',
                header: 'Certificate',
                render: (j) => <Link to={`/certificates/${encodeURIComponent(j.certificate_id)}`}>{j.certificate_id}</Link>,
              },
              { key: 'created', header: 'Created', render: (j) => <span title={j.created_at}>{relativeTime(j.created_at)}</span> },
            ]}
          />
        )}
      </Panel>
    </>
  );
}
