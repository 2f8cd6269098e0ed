import type { Row } from '../api/types';
import { ResourcePage } from '../components/ResourcePage';

export function Owners() {
  return (
    <ResourcePage
      resource="owners"
      schemaName="Owner"
      title="Owners"
      singular="owner"
      form={{ order: ['name', 'email', 'team_id'], overrides: { team_id: { title: 'Team' } } }}
      emptyText="Owners are the people notified about their certificates' expiry, renewals and failures."
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (r: Row) => <span className="strong">{String(r.name)}</span> },
        { key: 'email', header: 'E-mail', render: (r: Row) => String(r.email ?? '') || <span className="muted">—</span> },
        { key: 'team', header: 'Team', render: (r: Row) => String(r.team_id ?? '') || <span className="muted">—</span> },
      ]}
    />
  );
}
