import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { apiPath, describeError } from '../api/client';
import type { Notification } from '../api/types';
import { Link, useQueryState } from '../lib/router';
import { humanize, relativeTime } from '../lib/format';
import { EmptyState, ErrorBox, PageHeader, Pagination, Panel, Spinner, StatusBadge, runLimited, useToast } from '../components/ui';

const TYPES = ['ExpirationWarning', 'RenewalSuccess', 'RenewalFailure', 'DeploymentSuccess', 'DeploymentFailure', 'PolicyViolation', 'Revocation'];

export function Notifications() {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const [q, setQ] = useQueryState();
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = 50;
  const read = q.get('read') ?? '';
  const type = q.get('type') ?? '';
  const filters = { read: read === '' ? undefined : read === 'true', type: type || undefined };
  const list = useQuery({
    queryKey: ['notifications', 'list', { page, read, type }],
    queryFn: ({ signal }) => api.list<Notification>('notifications', { page, perPage, sort: '-created_at', filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });
  const rows = list.data?.data ?? [];

  async function mark(items: Notification[], value: boolean) {
    const results = await runLimited(items, 4, (n) => api.put(apiPath('notifications', n.id), { read: value }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) toast(describeError(failed.reason), 'bad');
    await qc.invalidateQueries({ queryKey: ['notifications'] });
  }

  const unreadHere = rows.filter((n) => !n.read);
  return (
    <>
      <PageHeader
        title="Notifications"
        subtitle="Expiry warnings, renewal and deployment outcomes, policy violations."
        actions={
          unreadHere.length > 0 && (
            <button className="btn" onClick={() => mark(unreadHere, true)}>
              Mark {unreadHere.length} shown as read
            </button>
          )
        }
      />
      <Panel>
        <div className="filters filter-row">
          <div className="tabs" role="tablist" aria-label="Read state">
            {[
              ['', 'All'],
              ['false', 'Unread'],
              ['true', 'Read'],
            ].map(([v, l]) => (
              <button key={v} role="tab" aria-selected={read === v} className={`tab ${read === v ? 'active' : ''}`} onClick={() => setQ({ read: v || null, page: null })}>
                {l}
              </button>
            ))}
          </div>
          <select aria-label="Notification type" value={type} onChange={(e) => setQ({ type: e.target.value || null, page: null })}>
            <option value="">All types</option>
            {TYPES.map((t) => (
              <option key={t} value={t}>
                {humanize(t)}
              </option>
            ))}
          </select>
        </div>
        {list.isError && <ErrorBox error={list.error} what="notifications" />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && (
          <EmptyState title={read === 'false' ? 'All caught up' : 'No notifications'}>
            {read === 'false'
              ? 'There are no unread notifications.'
              : 'certctl notifies owners before certificates expire and when renewals or deployments succeed or fail.'}
          </EmptyState>
        )}
        {rows.length > 0 && (
          <>
            <ul className="notifications">
              {rows.map((n) => (
                <li key={n.id} className={n.read ? 'read' : 'unread'} data-id={n.id}>
                  <span className="dot-unread" aria-label={n.read ? 'read' : 'unread'} />
                  <div className="body">
                    <div className="line1">
                      <strong>{humanize(n.type)}</strong> <StatusBadge status={n.status} />
                      <span className="muted small" title={n.created_at}>
                        {relativeTime(n.created_at)}
                      </span>
                    </div>
                    <div>{n.message}</div>
                    <div className="muted small">
                      {n.certificate_id && (
                        <>
                          <Link to={`/certificates/${encodeURIComponent(n.certificate_id)}`}>{n.certificate_id}</Link> ·{' '}
                        </>
                      )}
                      {n.channel ?? 'no channel'}
                      {n.recipient ? ` → ${n.recipient}` : ''}
                      {n.last_error ? ` · last error: ${n.last_error}` : ''}
                    </div>
                  </div>
                  <button className="btn small ghost" onClick={() => mark([n], !n.read)}>
                    {n.read ? 'Mark unread' : 'Mark read'}
                  </button>
                </li>
              ))}
            </ul>
            <Pagination page={page} perPage={perPage} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} />
          </>
        )}
      </Panel>
    </>
  );
}
