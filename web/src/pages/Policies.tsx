import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import type { PolicyViolation, Row } from '../api/types';
import { Link, useQueryState } from '../lib/router';
import { relativeTime } from '../lib/format';
import { DataTable } from '../components/DataTable';
import { Badge, Chips, EmptyState, ErrorBox, Pagination, Panel, Spinner, StatusBadge } from '../components/ui';
import { ResourcePage } from '../components/ResourcePage';

const SEVERITIES = ['Warning', 'Error', 'Critical'];

function Tabs({ tab }: { tab: string }) {
  const [, setQ] = useQueryState();
  return (
    <div className="tabs page-tabs" role="tablist" aria-label="Policies">
      <button role="tab" aria-selected={tab === 'rules'} className={`tab ${tab === 'rules' ? 'active' : ''}`} onClick={() => setQ({ tab: null, page: null, severity: null })}>
        Rules
      </button>
      <button role="tab" aria-selected={tab === 'violations'} className={`tab ${tab === 'violations' ? 'active' : ''}`} onClick={() => setQ({ tab: 'violations', page: null, severity: null, type: null })}>
        Violations
      </button>
    </div>
  );
}

function Violations() {
  const api = useApi();
  const [q, setQ] = useQueryState();
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const severity = (q.get('severity') ?? '').split(',').filter(Boolean);
  const filters = { severity, certificate_id: q.get('certificate_id') ?? undefined };
  const list = useQuery({
    queryKey: ['policy-violations', 'list', { page, ...filters }],
    queryFn: ({ signal }) => api.list<PolicyViolation>('policy-violations', { page, perPage: 50, sort: '-created_at', filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
  const rows = list.data?.data ?? [];
  return (
    <>
      <div className="page-header">
        <div>
          <h1>Policy violations</h1>
          <p className="subtitle">Found at issuance. Warnings are recorded; Error and Critical refuse the issuance.</p>
        </div>
      </div>
      <Tabs tab="violations" />
      <Panel>
        <div className="filters">
          <Chips label="Severity" options={SEVERITIES} selected={severity} onChange={(s) => setQ({ severity: s.join(',') || null, page: null })} />
        </div>
        {list.isError && <ErrorBox error={list.error} what="violations" />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && <EmptyState title="No violations">Every issued certificate met the enabled rules.</EmptyState>}
        {rows.length > 0 && (
          <>
            <DataTable<PolicyViolation>
              rows={rows}
              rowKey={(v) => v.id}
              columns={[
                { key: 'sev', header: 'Severity', render: (v) => <StatusBadge status={v.severity} /> },
                { key: 'msg', header: 'Violation', render: (v) => v.message },
                { key: 'cert', header: 'Certificate', render: (v) => <Link to={`/certificates/${encodeURIComponent(v.certificate_id)}`}>{v.certificate_id}</Link> },
                { key: 'rule', header: 'Rule', render: (v) => <code>{v.rule_id}</code> },
                { key: 'at', header: 'Found', render: (v) => relativeTime(v.created_at) },
              ]}
            />
            <Pagination page={page} perPage={50} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} />
          </>
        )}
      </Panel>
    </>
  );
}

export function Policies() {
  const [q] = useQueryState();
  if (q.get('tab') === 'violations') return <Violations />;
  return (
    <ResourcePage
      resource="policies"
      schemaName="Policy"
      title="Policies"
      singular="policy rule"
      subtitle="Rules every issuance is checked against."
      headerExtra={<Tabs tab="rules" />}
      chipFilter={{ field: 'severity', options: SEVERITIES }}
      form={{
        order: ['name', 'type', 'severity', 'enabled', 'config'],
        overrides: {
          severity: { default: 'Warning' },
          enabled: { default: true },
          config: { title: 'Parameters (JSON)', 'x-placeholder': '{"min_size": 256}' },
        },
      }}
      emptyText="Add rules such as a minimum key size, a maximum lifetime or allowed SAN patterns."
      columns={[
        { key: 'name', header: 'Name', sortField: 'name', render: (r: Row) => <span className="strong">{String(r.name)}</span> },
        { key: 'type', header: 'Rule', sortField: 'type', render: (r: Row) => String(r.type) },
        { key: 'sev', header: 'Severity', sortField: 'severity', render: (r: Row) => <StatusBadge status={String(r.severity)} /> },
        { key: 'cfg', header: 'Parameters', className: 'hide-sm', render: (r: Row) => <code className="small">{JSON.stringify(r.config ?? {})}</code> },
        { key: 'enabled', header: 'State', render: (r: Row) => (r.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge>) },
      ]}
    />
  );
}
