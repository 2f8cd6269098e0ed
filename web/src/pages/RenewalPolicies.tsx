import type { Row } from '../api/types';
import { formatSeconds } from '../lib/format';
import { Badge } from '../components/ui';
import { ResourcePage } from '../components/ResourcePage';

export function RenewalPolicies() {
  return (
    <ResourcePage
      resource="renewal-policies"
      schemaName="RenewalPolicy"
      title="Renewal policies"
      singular="renewal policy"
      form={{ order: ['name', 'renewal_window_days', 'auto_renew', 'alert_thresholds_days', 'max_retries', 'retry_interval_seconds'] }}
      emptyText="Certificates without a policy renew 30 days before expiry and warn at 30, 14, 7 and 0 days."
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (r: Row) => <span className="strong">{String(r.name)}</span> },
        { key: 'window', header: 'Renew before', render: (r: Row) => `${String(r.renewal_window_days ?? '—')} days` },
        { key: 'auto', header: 'Auto-renew', render: (r: Row) => (r.auto_renew ? <Badge tone="ok">yes</Badge> : <Badge tone="warn">no</Badge>) },
        { key: 'alerts', header: 'Warnings at (days)', render: (r: Row) => ((r.alert_thresholds_days as number[] | undefined) ?? []).join(', ') || '—' },
        { key: 'retry', header: 'Retries', className: 'hide-sm', render: (r: Row) => `${String(r.max_retries ?? '—')} × ${formatSeconds(r.retry_interval_seconds as number)}` },
      ]}
    />
  );
}
