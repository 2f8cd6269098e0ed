import { useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { useApi, useCapability } from '../api/context';
import { ApiError, apiPath, describeError } from '../api/client';
import { Modal, runLimited, useToast } from './ui';

interface BulkRevokeResult {
  job_id?: string;
  status?: string;
  affected?: number;
  succeeded?: number;
  skipped?: number;
  failed?: number;
}

/** RFC 5280 CRLReason names. */
export const REVOKE_REASONS: [string, string][] = [
  ['unspecified', 'Unspecified'],
  ['keyCompromise', 'Key compromise'],
  ['caCompromise', 'CA compromise'],
  ['affiliationChanged', 'Affiliation changed'],
  ['superseded', 'Superseded'],
  ['cessationOfOperation', 'Cessation of operation'],
  ['certificateHold', 'Certificate hold'],
  ['privilegeWithdrawn', 'Privilege withdrawn'],
];

function summarize(verb: string, results: PromiseSettledResult<unknown>[]): { text: string; ok: boolean } {
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  const done = results.length - failed.length;
  if (failed.length === 0) return { text: `${verb} ${done} certificate${done === 1 ? '' : 's'}.`, ok: true };
  const first = failed[0].reason;
  const missing = first instanceof ApiError && first.status === 404 && /no route/i.test(first.message);
  return {
    text: missing
      ? `${verb.replace(/d$/, '')}: not available on this server.`
      : `${verb} ${done} of ${results.length}; ${failed.length} failed: ${describeError(first)}`,
    ok: false,
  };
}

export function useRenew() {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  return async (ids: string[]) => {
    const results = await runLimited(ids, 4, (id) => api.post(apiPath('certificates', id, 'renew')));
    const s = summarize('Renewal queued for', results);
    toast(s.text, s.ok ? 'ok' : 'bad');
    await qc.invalidateQueries({ queryKey: ['certificates'] });
    await qc.invalidateQueries({ queryKey: ['jobs'] });
    return s.ok;
  };
}

export function RevokeDialog({ ids, onClose, onDone }: { ids: string[]; onClose: () => void; onDone?: () => void }) {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const [reason, setReason] = useState('unspecified');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const bulk = useCapability('bulkRevoke');
  async function submit() {
    setBusy(true);
    setError(null);
    if (ids.length > 1 && bulk) {
      // One server-side run (audited as one bulk revocation) instead of N calls.
      try {
        const r = await api.post<BulkRevokeResult>('/api/v1/certificates/bulk-revoke', { certificate_ids: ids, reason });
        await qc.invalidateQueries({ queryKey: ['certificates'] });
        await qc.invalidateQueries({ queryKey: ['audit'] });
        const parts = [`Revoked ${r.succeeded ?? 0} of ${r.affected ?? ids.length}`];
        if (r.skipped) parts.push(`${r.skipped} skipped (not revocable)`);
        if (r.failed) parts.push(`${r.failed} failed`);
        if (r.status === 'Running') parts.push('the rest continues in the background');
        toast(`${parts.join('; ')}.`, r.failed ? 'bad' : 'ok');
        onDone?.();
        onClose();
      } catch (e) {
        setError(describeError(e));
      } finally {
        setBusy(false);
      }
      return;
    }
    const results = await runLimited(ids, 4, (id) => api.post(apiPath('certificates', id, 'revoke'), { reason }));
    const s = summarize('Revoked', results);
    setBusy(false);
    await qc.invalidateQueries({ queryKey: ['certificates'] });
    await qc.invalidateQueries({ queryKey: ['audit'] });
    if (s.ok) {
      toast(s.text, 'ok');
      onDone?.();
      onClose();
    } else {
      setError(s.text);
    }
  }
  return (
    <Modal
      title={ids.length === 1 ? `Revoke ${ids[0]}` : `Revoke ${ids.length} certificates`}
      onClose={onClose}
      footer={
        <>
          <button className="btn" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button className="btn danger" onClick={submit} disabled={busy} data-testid="confirm-revoke">
            {busy ? 'Revoking…' : 'Revoke'}
          </button>
        </>
      }
    >
      <p>
        Revocation is permanent: relying parties that check the CRL or OCSP will reject{' '}
        {ids.length === 1 ? 'this certificate' : 'these certificates'}.
      </p>
      <div className="field">
        <label htmlFor="revoke-reason">Reason</label>
        <select id="revoke-reason" value={reason} onChange={(e) => setReason(e.target.value)}>
          {REVOKE_REASONS.map(([v, l]) => (
            <option key={v} value={v}>
              {l}
            </option>
          ))}
        </select>
      </div>
      {error && (
        <div className="alert tone-bad" role="alert">
          {error}
        </div>
      )}
    </Modal>
  );
}
