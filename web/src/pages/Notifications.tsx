import { useState } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { useApi, useCapability } from '../api/context';
import { apiPath, describeError } from '../api/client';
import type { Notification } from '../api/types';
import { Link, useQueryState } from '../lib/router';
import { formatDateTime, humanize, relativeTime } from '../lib/format';
import { DELIVERY_LABEL, DELIVERY_STATUSES, attemptsLabel, canRequeue } from '../lib/notifications';
import { NotifierChannels, useNotifiers } from '../components/Notifiers';
import { EmptyState, ErrorBox, PageHeader, Pagination, Panel, Spinner, StatusBadge, runLimited, useToast } from '../components/ui';

const TYPES = ['ExpirationWarning', 'RenewalSuccess', 'RenewalFailure', 'DeploymentSuccess', 'DeploymentFailure', 'PolicyViolation', 'Revocation'];

export function Notifications() {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const hasRead = useCapability('notificationRead');
  const hasRequeue = useCapability('notificationRequeue');
  const { listing } = useNotifiers();
  const [q, setQ] = useQueryState();
  const [requeueing, setRequeueing] = useState<Set<string>>(() => new Set());
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = 50;
  const read = q.get('read') ?? '';
  const type = q.get('type') ?? '';
  const status = q.get('status') ?? '';
  const channel = q.get('channel') ?? '';
  const filters = { read: read === '' ? undefined : read === 'true', type: type || undefined, status: status || undefined, channel: channel || undefined };
  const list = useQuery({
    queryKey: ['notifications', 'list', { page, read, type, status, channel }],
    queryFn: ({ signal }) => api.list<Notification>('notifications', { page, perPage, sort: '-created_at', filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });
  const rows = list.data?.data ?? [];
  const channels = [...new Set(['email', ...(listing?.channels.map((c) => c.channel) ?? []), ...(channel ? [channel] : [])])].sort();
  const filtered = read !== '' || type !== '' || status !== '' || channel !== '';

  async function mark(items: Notification[], value: boolean) {
    // POST …/read where the server has it; the generic update otherwise (and to mark unread).
    const results = await runLimited(items, 4, (n) =>
      value && hasRead !== false ? api.post(apiPath('notifications', n.id, 'read')) : api.put(apiPath('notifications', n.id), { read: value }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) toast(describeError(failed.reason), 'bad');
    await qc.invalidateQueries({ queryKey: ['notifications'] });
  }

  async function requeue(n: Notification) {
    setRequeueing((s) => new Set(s).add(n.id));
    try {
      await api.post(apiPath('notifications', n.id, 'requeue'));
      toast(`Requeued ${n.id}: it is delivered again now.`);
    } catch (e) {
      toast(`Requeue ${n.id}: ${describeError(e)}`, 'bad');
    } finally {
      setRequeueing((s) => {
        const next = new Set(s);
        next.delete(n.id);
        return next;
      });
      // A refused requeue (409) usually means the row moved on: show where it is now.
      await qc.invalidateQueries({ queryKey: ['notifications'] });
    }
  }

  const unreadHere = rows.filter((n) => !n.read);
  return (
    <>
      <PageHeader
        title="Notifications"
        subtitle={
          <>
            Expiry warnings, renewal and deployment outcomes, policy violations — and their delivery to each channel. See also the{' '}
            <Link to="/digest">digest</Link>.
          </>
        }
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
          <select aria-label="Delivery status" value={status} onChange={(e) => setQ({ status: e.target.value || null, page: null })}>
            <option value="">Any delivery status</option>
            {DELIVERY_STATUSES.map((s) => (
              <option key={s} value={s}>
                {DELIVERY_LABEL[s]}
              </option>
            ))}
          </select>
          <select aria-label="Channel" value={channel} onChange={(e) => setQ({ channel: e.target.value || null, page: null })}>
            <option value="">All channels</option>
            {channels.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
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
          <EmptyState title={read === 'false' && !status && !channel && !type ? 'All caught up' : filtered ? 'No notifications match these filters' : 'No notifications'}>
            {read === 'false' && !status && !channel && !type
              ? 'There are no unread notifications.'
              : status === 'DeadLetter'
                ? 'No notification has exhausted its delivery retries.'
                : 'certctl notifies owners before certificates expire and when renewals or deployments succeed or fail.'}
          </EmptyState>
        )}
        {rows.length > 0 && (
          <>
            <ul className="notifications">
              {rows.map((n) => {
                const attempts = attemptsLabel(n.attempts);
                return (
                  <li key={n.id} className={n.read ? 'read' : 'unread'} data-id={n.id} data-delivery={n.status}>
                    <span className="dot-unread" aria-label={n.read ? 'read' : 'unread'} />
                    <div className="body">
                      <div className="line1">
                        <strong>{humanize(n.type)}</strong>
                        <span className="badge tone-muted channel" data-channel={n.channel ?? ''} title="Channel">
                          {n.channel ?? 'no channel'}
                        </span>
                        <StatusBadge status={n.status} />
                        {attempts && (
                          <span className="muted small" data-testid="attempts">
                            {attempts}
                          </span>
                        )}
                        <span className="muted small" title={n.created_at}>
                          {relativeTime(n.created_at)}
                        </span>
                      </div>
                      <div>{n.message}</div>
                      <div className="muted small">
                        {n.certificate_id && (
                          <>
                            <Link to={`/certificates/${encodeURIComponent(n.certificate_id)}`}>{n.certificate_id}</Link>
                            {n.recipient ? ' · ' : ''}
                          </>
                        )}
                        {n.recipient ? `to ${n.recipient}` : ''}
                        {n.status === 'Sent' && n.sent_at ? ` · sent ${formatDateTime(n.sent_at)}` : ''}
                        {n.status !== 'Sent' && n.status !== 'DeadLetter' && n.next_attempt_at ? ` · next attempt ${relativeTime(n.next_attempt_at)}` : ''}
                      </div>
                      {n.last_error && (
                        <div className="last-error small" data-testid="last-error">
                          <span className="muted">Last error:</span> {n.last_error}
                        </div>
                      )}
                    </div>
                    <div className="row-actions">
                      {canRequeue(n) && hasRequeue !== false && (
                        <button className="btn small" disabled={requeueing.has(n.id)} onClick={() => requeue(n)} title="Deliver again now, attempts reset">
                          Requeue
                        </button>
                      )}
                      <button className="btn small ghost" onClick={() => mark([n], !n.read)}>
                        {n.read ? 'Mark unread' : 'Mark read'}
                      </button>
                    </div>
                  </li>
                );
              })}
            </ul>
            <Pagination page={page} perPage={perPage} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} />
          </>
        )}
      </Panel>
      <NotifierChannels />
    </>
  );
}
