import type { Row } from '../api/types';
import { Link } from '../lib/router';
import { ResourcePage } from '../components/ResourcePage';

export function Teams() {
  return (
    <ResourcePage
      resource="teams"
      schemaName="Team"
      title="Teams"
      singular="team"
      form={{ order: ['name', 'description'] }}
      emptyText="Teams group owners and certificates, so notifications reach the people responsible."
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (r: Row) => <span className="strong">{String(r.name)}</span> },
        { key: 'desc', header: 'Description', render: (r: Row) => String(r.description ?? '') || <span className="muted">—</span> },
        { key: 'certs', header: '', render: (r: Row) => <Link to={`/certificates?team_id=${encodeURIComponent(r.id)}`}>certificates →</Link> },
      ]}
    />
  );
}
