import type { Row } from '../api/types';
import { formatSeconds } from '../lib/format';
import { Badge } from '../components/ui';
import { ResourcePage } from '../components/ResourcePage';

export function Profiles() {
  return (
    <ResourcePage
      resource="profiles"
      schemaName="Profile"
      title="Profiles"
      singular="profile"
      subtitle="Rules a certificate must meet: key algorithms, lifetime, required SANs, extended key usages, approval."
      form={{
        order: ['name', 'description', 'allowed_ekus', 'max_ttl_seconds', 'required_sans', 'allowed_key_algorithms', 'requires_approval', 'enabled'],
        overrides: {
          max_ttl_seconds: { title: 'Maximum lifetime (seconds)', 'x-placeholder': '7776000 (90 days)' },
          allowed_ekus: { title: 'Extended key usages', default: ['serverAuth'] },
          allowed_key_algorithms: { title: 'Allowed key algorithms (JSON)', 'x-placeholder': '[{"algorithm": "ECDSA", "min_size": 256}]' },
          enabled: { default: true },
        },
      }}
      emptyText="Without a profile any key and the default lifetime are accepted. A profile with “requires approval” makes issuance wait for an operator."
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (r: Row) => <span className="strong">{String(r.name)}</span> },
        { key: 'ttl', header: 'Max lifetime', render: (r: Row) => formatSeconds(r.max_ttl_seconds as number | null) },
        { key: 'ekus', header: 'EKUs', render: (r: Row) => ((r.allowed_ekus as string[] | undefined) ?? []).join(', ') || '—' },
        { key: 'approval', header: 'Approval', render: (r: Row) => (r.requires_approval ? <Badge tone="warn">required</Badge> : <span className="muted">no</span>) },
        { key: 'enabled', header: 'State', render: (r: Row) => (r.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge>) },
      ]}
    />
  );
}
