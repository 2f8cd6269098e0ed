import type { Row } from '../api/types';
import { apiPath, describeError } from '../api/client';
import { useApi } from '../api/context';
import { Link } from '../lib/router';
import { download } from '../lib/csv';
import { Badge, useToast } from '../components/ui';
import { ResourcePage } from '../components/ResourcePage';

function CaButton({ row }: { row: Row }) {
  const api = useApi();
  const toast = useToast();
  if (row.type !== 'local') return null;
  return (
    <button
      className="btn small"
      onClick={async () => {
        try {
          download(`${row.id}-ca.pem`, await api.get<string>(apiPath('issuers', row.id, 'ca'), { text: true }), 'application/x-pem-file');
        } catch (e) {
          toast(describeError(e), 'bad');
        }
      }}
    >
      CA PEM
    </button>
  );
}

export function Issuers() {
  return (
    <ResourcePage
      resource="issuers"
      schemaName="Issuer"
      title="Issuers"
      singular="issuer"
      subtitle={
        <>
          Certificate authorities certctl requests certificates from. Connector settings come from the connector plugin's
          schema when it supplies one (see <Link to="/plugins">plugins</Link>).
        </>
      }
      pluginKind="issuer"
      form={{ order: ['name', 'type', 'enabled', 'config'], overrides: { enabled: { default: true } } }}
      emptyText="The built-in Local CA issuer is created at first start; add ACME or other issuers here."
      canDelete={(r) => r.id !== 'iss-local'}
      rowActions={(r) => <CaButton row={r} />}
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (r: Row) => <span className="strong">{String(r.name)}</span> },
        { key: 'id', header: 'ID', sortField: 'id', render: (r: Row) => <code>{r.id}</code> },
        { key: 'type', header: 'Type', sortField: 'type', render: (r: Row) => String(r.type) },
        { key: 'enabled', header: 'State', render: (r: Row) => (r.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge>) },
        { key: 'certs', header: '', className: 'hide-sm', render: (r: Row) => <Link to={`/certificates?issuer_id=${encodeURIComponent(r.id)}`}>certificates →</Link> },
      ]}
    />
  );
}
