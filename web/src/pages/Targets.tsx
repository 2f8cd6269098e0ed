import type { Row } from '../api/types';
import { Link } from '../lib/router';
import { relativeTime } from '../lib/format';
import { Badge } from '../components/ui';
import { ResourcePage } from '../components/ResourcePage';

export function Targets() {
  return (
    <ResourcePage
      resource="targets"
      schemaName="Target"
      title="Targets"
      singular="target"
      subtitle="Where certificates are deployed: a web server, proxy or mail server on a host run by an agent."
      pluginKind="target"
      form={{ order: ['name', 'type', 'agent_id', 'enabled', 'config'], overrides: { agent_id: { title: 'Agent' }, enabled: { default: true } } }}
      emptyText={
        <>
          A target names a service (nginx, HAProxy, Postfix, …) on a host where an <Link to="/agents">agent</Link> runs.
          Map certificates to it from a certificate's page.
        </>
      }
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (t: Row) => <span className="strong">{String(t.name)}</span> },
        { key: 'type', header: 'Type', sortField: 'type', render: (t: Row) => String(t.type) },
        {
          key: 'agent',
          header: 'Agent',
          render: (t: Row) => (t.agent_id ? <Link to={`/agents/${encodeURIComponent(String(t.agent_id))}`}>{String(t.agent_id)}</Link> : <span className="muted">none</span>),
        },
        { key: 'enabled', header: 'State', render: (t: Row) => (t.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge>) },
        { key: 'updated', header: 'Updated', sortField: 'updated_at', className: 'hide-sm', render: (t: Row) => relativeTime(String(t.updated_at)) },
      ]}
    />
  );
}
