import { useQuery } from '@tanstack/react-query';
import { useApi, useCapability } from '../api/context';
import { parseNotifiers } from '../lib/notifications';
import { humanize } from '../lib/format';
import { EmptyState, ErrorBox, Panel, Spinner, Unavailable } from './ui';

/** `GET /api/v1/notifiers` (configured channels, routes, whether the digest can be sent). */
export function useNotifiers() {
  const api = useApi();
  const available = useCapability('notifiers');
  const query = useQuery({
    queryKey: ['notifiers'],
    queryFn: async ({ signal }) => parseNotifiers(await api.get('/api/v1/notifiers', { signal })),
    enabled: available === true,
    staleTime: 60_000,
  });
  return { available, query, listing: query.data };
}

/** The channels are configured by environment only (as in the reference): a read-only list. */
export function NotifierChannels() {
  const { available, query, listing } = useNotifiers();
  return (
    <Panel title="Delivery channels" className="notifiers">
      {available === undefined && <Spinner />}
      {available === false && <Unavailable what="the channel list" />}
      {available && query.isLoading && <Spinner />}
      {available && query.isError && <ErrorBox error={query.error} what="notification channels" />}
      {listing && listing.channels.length === 0 && (
        <EmptyState title="No notification channels configured">
          Notifications stay in this inbox. Enable a channel with its environment variables — <code>CERTCTL_SMTP_HOST</code> (email),{' '}
          <code>CERTCTL_WEBHOOK_URL</code>, <code>CERTCTL_SLACK_WEBHOOK_URL</code>, <code>CERTCTL_TEAMS_WEBHOOK_URL</code>,{' '}
          <code>CERTCTL_PAGERDUTY_ROUTING_KEY</code>, <code>CERTCTL_OPSGENIE_API_KEY</code> — and install its notifier plugin, then restart the server.
        </EmptyState>
      )}
      {listing && listing.channels.length > 0 && (
        <>
          <div className="table-wrap">
            <table className="table small">
              <thead>
                <tr>
                  <th>Channel</th>
                  <th>Enabled by</th>
                  <th>Configuration</th>
                  <th>Granted hosts</th>
                  <th>Default for</th>
                </tr>
              </thead>
              <tbody>
                {listing.channels.map((c) => (
                  <tr key={c.channel} data-channel={c.channel}>
                    <td>
                      <strong>{c.channel}</strong>
                      {c.plugin !== c.channel && <span className="muted"> (plugin {c.plugin})</span>}
                    </td>
                    <td>{c.enabledBy ? <code>{c.enabledBy}</code> : '—'}</td>
                    <td>
                      {c.config.length === 0
                        ? '—'
                        : c.config.map(([k, v]) => (
                            <div key={k}>
                              <code>{k}</code> <span className={v === '***' ? 'muted' : undefined}>{v}</span>
                            </div>
                          ))}
                    </td>
                    <td>{c.grantedHosts.join(', ') || '—'}</td>
                    <td>{c.types.length ? c.types.map(humanize).join(', ') : <span className="muted">routed types only</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {listing.routes.length > 0 && (
            <p className="muted small">
              Routes (<code>CERTCTL_NOTIFICATION_ROUTES</code>):{' '}
              {listing.routes.map(([t, chans]) => `${humanize(t)} → ${chans.join(', ') || 'none'}`).join('; ')}
            </p>
          )}
          <p className="muted small">Configured by environment variables; secrets are shown as ***. A renewal policy's channels override the routes.</p>
        </>
      )}
    </Panel>
  );
}
