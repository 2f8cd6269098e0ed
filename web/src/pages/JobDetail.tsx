import { useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { ApiError, apiPath } from '../api/client';
import type { AuditEvent, Job } from '../api/types';
import { Link } from '../lib/router';
import { formatDateTime, humanize, relativeTime } from '../lib/format';
import { EmptyState, ErrorBox, KeyValues, PageHeader, Panel, Spinner, StatusBadge } from '../components/ui';
import { JobActions } from '../components/JobActions';

export function JobDetail({ params }: { params: Record<string, string> }) {
  const id = params.id;
  const api = useApi();
  const job = useQuery({
    queryKey: ['jobs', id],
    queryFn: ({ signal }) => api.get<Job>(apiPath('jobs', id), { signal }),
    refetchInterval: 2_000,
  });
  const events = useQuery({
    queryKey: ['audit', 'for', id],
    queryFn: ({ signal }) => api.list<AuditEvent>('audit', { perPage: 50, sort: 'timestamp', filters: { resource_id: id } }, signal),
    refetchInterval: 5_000,
  });
  if (job.isLoading) return <Spinner />;
  if (job.isError) {
    if (job.error instanceof ApiError && job.error.status === 404) {
      return <EmptyState title="Job not found" action={<Link to="/jobs" className="btn">Back to jobs</Link>}>There is no job <code>{id}</code>.</EmptyState>;
    }
    return <ErrorBox error={job.error} what="the job" />;
  }
  const j = job.data as Job;
  return (
    <>
      <PageHeader
        title={
          <>
            {j.type} job <StatusBadge status={j.status} />
          </>
        }
        subtitle={<code>{j.id}</code>}
        actions={<JobActions job={j} />}
      />
      {j.status === 'AwaitingApproval' && (
        <div className="alert tone-warn" role="status">
          This job waits for an operator: its certificate's profile requires approval before issuance.
        </div>
      )}
      {j.status === 'AwaitingCSR' && (
        <div className="alert tone-info" role="status">
          Waiting for an agent to generate a key and submit a CSR{j.agent_id ? ` (agent ${j.agent_id})` : ''}.
        </div>
      )}
      {j.last_error && (
        <div className="alert tone-bad" role="alert">
          <strong>Last error:</strong> {j.last_error}
        </div>
      )}
      <div className="grid-2">
        <Panel title="Details">
          <KeyValues
            items={[
              ['Certificate', <Link to={`/certificates/${encodeURIComponent(j.certificate_id)}`}>{j.certificate_id}</Link>],
              ['Target', j.target_id],
              ['Agent', j.agent_id && <Link to={`/agents/${encodeURIComponent(j.agent_id)}`}>{j.agent_id}</Link>],
              ['Attempts', `${j.attempts} of ${j.max_attempts}`],
              ['Scheduled', j.scheduled_at && formatDateTime(j.scheduled_at)],
              ['Started', j.started_at && formatDateTime(j.started_at)],
              ['Completed', j.completed_at && formatDateTime(j.completed_at)],
              ['Created', formatDateTime(j.created_at)],
              ['Updated', `${formatDateTime(j.updated_at)} (${relativeTime(j.updated_at)})`],
            ]}
          />
        </Panel>
        <Panel title="Timeline">
          {events.isError && <ErrorBox error={events.error} what="the timeline" />}
          {events.data && events.data.data.length === 0 && <p className="muted">No events recorded.</p>}
          {events.data && events.data.data.length > 0 && (
            <ol className="timeline">
              {events.data.data.map((e) => (
                <li key={e.id}>
                  <span className="when" title={e.timestamp}>
                    {formatDateTime(e.timestamp)}
                  </span>
                  <span className="what">{humanize(e.action)}</span>
                  <span className="muted small">
                    by {e.actor}
                    {typeof e.details?.reason === 'string' ? ` — ${e.details.reason}` : ''}
                  </span>
                </li>
              ))}
            </ol>
          )}
        </Panel>
      </div>
    </>
  );
}
