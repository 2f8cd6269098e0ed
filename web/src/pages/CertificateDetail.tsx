import { useState } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { useApi, useCapability } from '../api/context';
import { ApiError, apiPath, describeError, rowsOf } from '../api/client';
import type { AuditEvent, Certificate, CertificateVersion, Job, PemExport, Target } from '../api/types';
import { Link, navigate } from '../lib/router';
import { daysUntil, expiryLabel, expiryTone, formatDateTime, humanize, relativeTime, shortFingerprint } from '../lib/format';
import { DataTable } from '../components/DataTable';
import {
  CopyButton,
  DownloadButton,
  EmptyState,
  ErrorBox,
  KeyValues,
  Modal,
  PageHeader,
  Panel,
  Spinner,
  StatusBadge,
  Unavailable,
  useToast,
} from '../components/ui';
import { RevokeDialog, useRenew } from '../components/CertActions';
import { download } from '../lib/csv';

const LIVE_MS = 2_000;

function PemModal({ id, name, onClose }: { id: string; name: string; onClose: () => void }) {
  const api = useApi();
  const q = useQuery({
    queryKey: ['certificates', id, 'export-pem'],
    queryFn: () => api.get<PemExport>(apiPath('certificates', id, 'export', 'pem')),
    retry: false,
    staleTime: 0,
  });
  const missing = q.error instanceof ApiError && q.error.status === 404 && /no route/i.test(q.error.message);
  const parts: [string, string | undefined][] = q.data
    ? [
        ['Certificate', q.data.certificate],
        ['Chain', typeof q.data.chain === 'string' ? q.data.chain : undefined],
        ['Full chain', typeof q.data.full_chain === 'string' ? q.data.full_chain : typeof q.data.pem_chain === 'string' ? q.data.pem_chain : undefined],
      ]
    : [];
  return (
    <Modal title={`Export ${name} (PEM)`} onClose={onClose} wide>
      {q.isLoading && <Spinner />}
      {missing && <Unavailable what="PEM export" />}
      {q.isError && !missing && <ErrorBox error={q.error} what="the PEM export" />}
      {q.data &&
        parts
          .filter((p): p is [string, string] => typeof p[1] === 'string' && p[1].length > 0)
          .map(([label, pem]) => {
            const file = `${name}${label === 'Certificate' ? '' : `-${label.toLowerCase().replace(' ', '')}`}.pem`;
            return (
              <div key={label} className="pem-block" data-testid={`pem-${label.toLowerCase().replace(' ', '-')}`}>
                <div className="pem-head">
                  <strong>{label}</strong>
                  <span className="actions">
                    <CopyButton text={pem} />
                    <DownloadButton filename={file} text={pem} />
                  </span>
                </div>
                <textarea className="mono pem" readOnly value={pem} rows={8} aria-label={`${label} PEM`} />
              </div>
            );
          })}
      {q.data && <p className="muted small">The private key is never exported by the dashboard.</p>}
    </Modal>
  );
}

function CrlOcspPanel({ cert }: { cert: Certificate }) {
  const api = useApi();
  const toast = useToast();
  const hasCrl = useCapability('crl');
  const hasOcsp = useCapability('ocsp');
  const issuer = cert.issuer_id;
  if (!issuer) {
    return (
      <Panel title="Revocation endpoints">
        <p className="muted">No issuer: revocation status is published by the issuer that signs the certificate.</p>
      </Panel>
    );
  }
  const origin = window.location.origin;
  const crl = `${origin}/.well-known/pki/crl/${encodeURIComponent(issuer)}`;
  const ocsp = `${origin}/.well-known/pki/ocsp/${encodeURIComponent(issuer)}`;
  return (
    <Panel title="Revocation endpoints" className="crl-panel">
      <KeyValues
        items={[
          [
            'CRL',
            <span className="endpoint">
              <code>{crl}</code> <CopyButton text={crl} />
              {hasCrl === false && <span className="badge tone-muted">not available on this server</span>}
              {hasCrl && (
                <a className="btn small" href={crl} download>
                  Download
                </a>
              )}
            </span>,
          ],
          [
            'OCSP responder',
            <span className="endpoint">
              <code>{ocsp}</code> <CopyButton text={ocsp} />
              {hasOcsp === false && <span className="badge tone-muted">not available on this server</span>}
            </span>,
          ],
          [
            'Issuing CA',
            <button
              className="btn small"
              onClick={async () => {
                try {
                  const pem = await api.get<string>(apiPath('issuers', issuer, 'ca'), { text: true });
                  download(`${issuer}-ca.pem`, pem, 'application/x-pem-file');
                } catch (e) {
                  toast(`CA chain: ${describeError(e)}`, 'bad');
                }
              }}
            >
              Download CA chain ({issuer})
            </button>,
          ],
        ]}
      />
      <p className="muted small">
        Short-lived certificates carry no CRL or OCSP location: they simply expire. URLs embedded in certificates use the
        server's <code>CERTCTL_PUBLIC_URL</code>, which may differ from this address.
      </p>
    </Panel>
  );
}

function TargetsPanel({ cert }: { cert: Certificate }) {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const [choice, setChoice] = useState('');
  const mapped = useQuery({
    queryKey: ['certificates', cert.id, 'targets'],
    queryFn: async () => rowsOf<Target>(await api.get(apiPath('certificates', cert.id, 'targets'))),
  });
  const all = useQuery({
    queryKey: ['targets', 'options-full'],
    queryFn: ({ signal }) => api.list<Target>('targets', { perPage: 500, sort: 'name' }, signal),
  });
  const mappedIds = new Set((mapped.data ?? []).map((t) => t.id));
  const available = (all.data?.data ?? []).filter((t) => !mappedIds.has(t.id));
  const refresh = () => qc.invalidateQueries({ queryKey: ['certificates', cert.id, 'targets'] });

  async function deploy(t: Target) {
    try {
      const job = await api.post<Job>('/api/v1/jobs', {
        type: 'Deployment',
        certificate_id: cert.id,
        target_id: t.id,
        ...(t.agent_id ? { agent_id: t.agent_id } : {}),
      });
      toast(`Deployment to ${t.name} queued (${job.id}).`);
      await qc.invalidateQueries({ queryKey: ['jobs'] });
    } catch (e) {
      toast(`Deploy: ${describeError(e)}`, 'bad');
    }
  }

  return (
    <Panel title="Deployment targets">
      {mapped.isError && <ErrorBox error={mapped.error} what="mapped targets" />}
      {mapped.data && mapped.data.length === 0 && (
        <p className="muted">
          Not deployed anywhere yet. Map a target below; an agent on that host installs the certificate.
          {all.data && all.data.total === 0 && (
            <>
              {' '}
              No targets exist: <Link to="/targets">create one</Link> first.
            </>
          )}
        </p>
      )}
      {mapped.data && mapped.data.length > 0 && (
        <DataTable<Target>
          rows={mapped.data}
          rowKey={(t) => t.id}
          columns={[
            { key: 'name', header: 'Target', render: (t) => <span className="strong">{t.name}</span> },
            { key: 'type', header: 'Type', render: (t) => t.type },
            { key: 'agent', header: 'Agent', render: (t) => (t.agent_id ? <Link to={`/agents/${encodeURIComponent(t.agent_id)}`}>{t.agent_id}</Link> : <span className="muted">none</span>) },
            {
              key: 'actions',
              header: '',
              className: 'right',
              render: (t) => (
                <span className="row-actions">
                  <button className="btn small" onClick={() => deploy(t)} disabled={cert.status !== 'Active' && cert.status !== 'Expiring'}>
                    Deploy now
                  </button>
                  <button
                    className="btn small ghost"
                    onClick={async () => {
                      try {
                        await api.del(apiPath('certificates', cert.id, 'targets', t.id));
                        toast(`Unmapped ${t.name}.`);
                        await refresh();
                      } catch (e) {
                        toast(describeError(e), 'bad');
                      }
                    }}
                  >
                    Unmap
                  </button>
                </span>
              ),
            },
          ]}
        />
      )}
      {available.length > 0 && (
        <form
          className="inline map-form"
          onSubmit={async (e) => {
            e.preventDefault();
            if (!choice) return;
            try {
              await api.post(apiPath('certificates', cert.id, 'targets'), { target_id: choice });
              toast('Target mapped.');
              setChoice('');
              await refresh();
            } catch (err) {
              toast(`Map target: ${describeError(err)}`, 'bad');
            }
          }}
        >
          <select aria-label="Target to map" value={choice} onChange={(e) => setChoice(e.target.value)}>
            <option value="">Choose a target…</option>
            {available.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name} ({t.type})
              </option>
            ))}
          </select>
          <button className="btn small" type="submit" disabled={!choice}>
            Map target
          </button>
        </form>
      )}
    </Panel>
  );
}

export function CertificateDetail({ params }: { params: Record<string, string> }) {
  const id = params.id;
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const renew = useRenew();
  const canRevoke = useCapability('revoke');
  const canExport = useCapability('exportPem');
  const [revoking, setRevoking] = useState(false);
  const [exporting, setExporting] = useState(false);
  const [confirmArchive, setConfirmArchive] = useState(false);

  const cert = useQuery({
    queryKey: ['certificates', id],
    queryFn: ({ signal }) => api.get<Certificate>(apiPath('certificates', id), { signal }),
    refetchInterval: LIVE_MS,
  });
  const versions = useQuery({
    // Every issuance or renewal touches the certificate, so its updated_at re-reads the versions.
    queryKey: ['certificates', id, 'versions', cert.data?.updated_at ?? null],
    queryFn: async ({ signal }) => rowsOf<CertificateVersion>(await api.get(apiPath('certificates', id, 'versions'), { signal })),
    enabled: !!cert.data,
    placeholderData: keepPreviousData,
  });
  const jobs = useQuery({
    queryKey: ['jobs', 'for-cert', id],
    queryFn: ({ signal }) => api.list<Job>('jobs', { perPage: 10, sort: '-created_at', filters: { certificate_id: id } }, signal),
    refetchInterval: LIVE_MS,
  });
  const audit = useQuery({
    // Re-read whenever the certificate changes (issued, renewed, revoked…).
    queryKey: ['audit', 'for', id, cert.data?.updated_at ?? null],
    queryFn: ({ signal }) => api.list<AuditEvent>('audit', { perPage: 15, sort: '-timestamp', filters: { resource_id: id } }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });

  if (cert.isLoading) return <Spinner />;
  if (cert.isError) {
    if (cert.error instanceof ApiError && cert.error.status === 404) {
      return (
        <EmptyState title="Certificate not found" action={<Link to="/certificates" className="btn">Back to certificates</Link>}>
          There is no certificate <code>{id}</code>.
        </EmptyState>
      );
    }
    return <ErrorBox error={cert.error} what="the certificate" />;
  }
  const c = cert.data as Certificate;
  const days = daysUntil(c.expires_at);
  const closed = c.status === 'Revoked' || c.status === 'Archived';
  const tags = Object.entries(c.tags ?? {});

  return (
    <>
      <PageHeader
        title={
          <>
            {c.name} <StatusBadge status={c.status} />
          </>
        }
        subtitle={
          <>
            <span className="mono">{c.common_name}</span>
            {c.expires_at && (
              <>
                {' · '}
                <span className={`tone-text-${expiryTone(days)}`} data-testid="expiry">
                  {expiryLabel(c.expires_at)}
                </span>
              </>
            )}
          </>
        }
        actions={
          <>
            <button
              className="btn"
              disabled={closed || c.status === 'RenewalInProgress'}
              onClick={() => renew([c.id])}
            >
              Renew
            </button>
            <button
              className="btn"
              onClick={() => setExporting(true)}
              disabled={canExport === false || !c.expires_at}
              title={canExport === false ? 'PEM export is not available on this server' : undefined}
            >
              Export PEM
            </button>
            <button
              className="btn danger"
              onClick={() => setRevoking(true)}
              disabled={closed || canRevoke === false || !c.expires_at}
              title={canRevoke === false ? 'Revocation is not available on this server' : undefined}
            >
              Revoke
            </button>
            <button className="btn ghost" onClick={() => setConfirmArchive(true)} disabled={c.status === 'Archived'}>
              Archive
            </button>
          </>
        }
      />
      {(canRevoke === false || canExport === false) && (
        <p className="muted small" data-testid="unavailable-note">
          {[canRevoke === false && 'Revocation', canExport === false && 'PEM export'].filter(Boolean).join(' and ')}: not
          available on this server.
        </p>
      )}
      {(c.status === 'Pending' || c.status === 'RenewalInProgress') && (
        <div className="alert tone-info live" role="status">
          <span className="spinner" aria-hidden="true" /> {c.status === 'Pending' ? 'Issuance' : 'Renewal'} in progress — this page
          updates by itself.
        </div>
      )}
      {c.status === 'Failed' && (
        <div className="alert tone-bad" role="alert">
          The last issuance or renewal failed. See the jobs below; retry a failed job or renew again.
        </div>
      )}
      <div className="grid-2">
        <Panel title="Details">
          <KeyValues
            items={[
              ['ID', <code>{c.id}</code>],
              ['Common name', <span className="mono">{c.common_name}</span>],
              ['SANs', c.sans.length ? c.sans.map((s) => <span key={s} className="tag mono">{s}</span>) : null],
              ['Expires', c.expires_at ? `${formatDateTime(c.expires_at)} (${expiryLabel(c.expires_at)})` : 'not issued yet'],
              ['Issuer', c.issuer_id && <Link to="/issuers">{c.issuer_id}</Link>],
              ['Profile', c.profile_id && <Link to="/profiles">{c.profile_id}</Link>],
              ['Renewal policy', c.renewal_policy_id && <Link to="/renewal-policies">{c.renewal_policy_id}</Link>],
              ['Environment', c.environment],
              ['Owner', c.owner_id && <Link to="/owners">{c.owner_id}</Link>],
              ['Team', c.team_id && <Link to="/teams">{c.team_id}</Link>],
              ['Tags', tags.length ? tags.map(([k, v]) => <span key={k} className="tag">{`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`}</span>) : null],
              ['Created', formatDateTime(c.created_at)],
              ['Updated', formatDateTime(c.updated_at)],
            ]}
          />
        </Panel>
        <CrlOcspPanel cert={c} />
      </div>
      <Panel title="Versions">
        {versions.isError && <ErrorBox error={versions.error} what="versions" />}
        {versions.data && versions.data.length === 0 && <p className="muted">No version issued yet.</p>}
        {versions.data && versions.data.length > 0 && (
          <DataTable<CertificateVersion>
            rows={versions.data}
            rowKey={(v) => v.serial_number}
            columns={[
              { key: 'serial', header: 'Serial', render: (v) => <code className="small">{v.serial_number}</code> },
              { key: 'nb', header: 'Not before', render: (v) => formatDateTime(v.not_before) },
              { key: 'na', header: 'Not after', render: (v) => formatDateTime(v.not_after) },
              { key: 'key', header: 'Key', render: (v) => [v.key_algorithm, v.key_size].filter(Boolean).join(' ') || '—' },
              { key: 'fp', header: 'SHA-256', className: 'hide-sm', render: (v) => <code className="small" title={v.fingerprint_sha256}>{shortFingerprint(v.fingerprint_sha256)}</code> },
              {
                key: 'pem',
                header: '',
                className: 'right',
                render: (v) => <DownloadButton filename={`${c.name}-${v.serial_number.slice(0, 8)}-chain.pem`} text={v.pem_chain} label="Chain PEM" />,
              },
            ]}
          />
        )}
      </Panel>
      <TargetsPanel cert={c} />
      <div className="grid-2">
        <Panel title="Jobs" actions={<Link to={`/jobs?certificate_id=${encodeURIComponent(c.id)}`}>All →</Link>}>
          {jobs.isError && <ErrorBox error={jobs.error} what="jobs" />}
          {jobs.data && jobs.data.data.length === 0 && <p className="muted">No jobs.</p>}
          {jobs.data && jobs.data.data.length > 0 && (
            <DataTable<Job>
              rows={jobs.data.data}
              rowKey={(j) => j.id}
              onRowClick={(j) => navigate(`/jobs/${encodeURIComponent(j.id)}`)}
              columns={[
                { key: 'id', header: 'Job', render: (j) => <Link to={`/jobs/${encodeURIComponent(j.id)}`}>{j.type}</Link> },
                { key: 'status', header: 'Status', render: (j) => <StatusBadge status={j.status} /> },
                { key: 'at', header: 'Created', render: (j) => relativeTime(j.created_at) },
              ]}
            />
          )}
        </Panel>
        <Panel title="History" actions={<Link to={`/audit?resource_id=${encodeURIComponent(c.id)}`}>Audit log →</Link>}>
          {audit.isError && <ErrorBox error={audit.error} what="history" />}
          {audit.data && audit.data.data.length === 0 && <p className="muted">No events.</p>}
          {audit.data && audit.data.data.length > 0 && (
            <ol className="timeline">
              {audit.data.data.map((e) => (
                <li key={e.id}>
                  <span className="when" title={e.timestamp}>
                    {relativeTime(e.timestamp)}
                  </span>
                  <span className="what">{humanize(e.action)}</span>
                  <span className="muted small">by {e.actor}</span>
                </li>
              ))}
            </ol>
          )}
        </Panel>
      </div>
      {revoking && <RevokeDialog ids={[c.id]} onClose={() => setRevoking(false)} />}
      {exporting && <PemModal id={c.id} name={c.name} onClose={() => setExporting(false)} />}
      {confirmArchive && (
        <Modal
          title={`Archive ${c.name}?`}
          onClose={() => setConfirmArchive(false)}
          footer={
            <>
              <button className="btn" onClick={() => setConfirmArchive(false)}>
                Cancel
              </button>
              <button
                className="btn danger"
                onClick={async () => {
                  try {
                    await api.del(apiPath('certificates', c.id));
                    toast(`Archived ${c.name}.`);
                    setConfirmArchive(false);
                    await qc.invalidateQueries({ queryKey: ['certificates'] });
                  } catch (e) {
                    toast(describeError(e), 'bad');
                  }
                }}
              >
                Archive
              </button>
            </>
          }
        >
          Archived certificates are no longer renewed or deployed. The record and its history are kept.
        </Modal>
      )}
    </>
  );
}
