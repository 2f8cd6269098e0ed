import { useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { ApiError, apiPath } from '../api/client';
import type { Agent, Job, Target } from '../api/types';
import { Link, navigate } from '../lib/router';
import { formatDateTime, relativeTime } from '../lib/format';
import { DataTable } from '../components/DataTable';
import { EmptyState, ErrorBox, KeyValues, PageHeader, Panel, Spinner, StatusBadge } from '../components/ui';
import { HeartbeatBadge } from './Agents';

export function AgentDetail({ params }: { params: Record<string, string> }) {
  const id = params.id;
  const api = useApi();
  const agent = useQuery({
    queryKey: ['agents', id],
    queryFn: ({ signal }) => api.get<Agent>(apiPath('agents', id), { signal }),
    refetchInterval: 10_000,
  });
  const jobs = useQuery({
    queryKey: ['jobs', 'for-agent', id],
    queryFn: ({ signal }) => api.list<Job>('jobs', { perPage: 15, sort: '-created_at', filters: { agent_id: id } }, signal),
    refetchInterval: 5_000,
  });
  const targets = useQuery({
    queryKey: ['targets', 'for-agent', id],
    queryFn: ({ signal }) => api.list<Target>('targets', { perPage: 100, filters: { agent_id: id } }, signal),
  });
  if (agent.isLoading) return <Spinner />;
  if (agent.isError) {
    if (agent.error instanceof ApiError && agent.error.status === 404) {
      return <EmptyState title="Agent not found" action={<Link to="/agents" className="btn">Back to agents</Link>}>There is no agent <code>{id}</code>.</EmptyState>;
    }
    return <ErrorBox error={agent.error} what="the agent" />;
  }
  const a = agent.data as Agent;
  return (
    <>
      <PageHeader title={<>{a.name} <StatusBadge status={a.status} /></>} subtitle={<code>{a.id}</code>} />
      <div className="grid-2">
        <Panel title="System">
          <KeyValues
            items={[
              ['Hostname', a.hostname],
              ['Operating system', a.os],
              ['Architecture', a.architecture],
              ['IP address', a.ip_address],
              ['Agent version', a.version],
              ['Heartbeat', <HeartbeatBadge at={a.last_heartbeat_at} />],
              ['Last heartbeat', a.last_heartbeat_at && formatDateTime(a.last_heartbeat_at)],
              ['Registered', formatDateTime(a.created_at)],
            ]}
          />
        </Panel>
        <Panel title="Targets">
          {targets.isError && <ErrorBox error={targets.error} what="targets" />}
          {targets.data && targets.data.data.length === 0 && (
            <p className="muted">
              No targets use this agent. <Link to="/targets">Create a target</Link> and pick this agent.
            </p>
          )}
          {targets.data && targets.data.data.length > 0 && (
            <ul className="plain">
              {targets.data.data.map((t) => (
                <li key={t.id}>
                  <strong>{t.name}</strong> <span className="muted">({t.type})</span>
                </li>
              ))}
            </ul>
          )}
        </Panel>
      </div>
      <Panel title="Recent jobs">
        {jobs.isError && <ErrorBox error={jobs.error} what="jobs" />}
        {jobs.data && jobs.data.data.length === 0 && <p className="muted">No jobs for this agent yet.</p>}
        {jobs.data && jobs.data.data.length > 0 && (
          <DataTable<Job>
            rows={jobs.data.data}
            rowKey={(j) => j.id}
            onRowClick={(j) => navigate(`/jobs/${encodeURIComponent(j.id)}`)}
            columns={[
              { key: 'id', header: 'Job', render: (j) => <Link to={`/jobs/${encodeURIComponent(j.id)}`}>{j.id}</Link> },
              { key: 'type', header: 'Type', render: (j) => j.type },
              { key: 'status', header: 'Status', render: (j) => <StatusBadge status={j.status} /> },
              { key: 'at', header: 'Created', render: (j) => relativeTime(j.created_at) },
            ]}
          />
        )}
      </Panel>
    </>
  );
}
