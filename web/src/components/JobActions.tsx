import { useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { apiPath, describeError } from '../api/client';
import type { Job } from '../api/types';
import { Modal, useToast } from './ui';

type Action = 'approve' | 'reject' | 'cancel' | 'retry';

export function actionsFor(job: Pick<Job, 'status'>): Action[] {
  switch (job.status) {
    case 'AwaitingApproval':
      return ['approve', 'reject', 'cancel'];
    case 'Pending':
    case 'AwaitingCSR':
    case 'Running':
      return ['cancel'];
    case 'Failed':
    case 'Cancelled':
      return ['retry'];
    default:
      return [];
  }
}

const LABEL: Record<Action, string> = { approve: 'Approve', reject: 'Reject', cancel: 'Cancel', retry: 'Retry' };

export function JobActions({ job, small }: { job: Job; small?: boolean }) {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const [asking, setAsking] = useState<Action | null>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);

  async function run(action: Action, why?: string) {
    setBusy(true);
    try {
      await api.post(apiPath('jobs', job.id, action), why ? { reason: why } : {});
      toast(`${LABEL[action]}: ${job.id}`);
      setAsking(null);
      setReason('');
      await qc.invalidateQueries({ queryKey: ['jobs'] });
      await qc.invalidateQueries({ queryKey: ['certificates'] });
    } catch (e) {
      toast(`${LABEL[action]} ${job.id}: ${describeError(e)}`, 'bad');
    } finally {
      setBusy(false);
    }
  }

  const actions = actionsFor(job);
  if (actions.length === 0) return null;
  return (
    <span className="row-actions">
      {actions.map((a) => (
        <button
          key={a}
          className={`btn ${small ? 'small' : ''} ${a === 'approve' ? 'primary' : a === 'reject' ? 'danger' : ''}`}
          disabled={busy}
          onClick={() => (a === 'reject' || a === 'cancel' ? setAsking(a) : run(a))}
        >
          {LABEL[a]}
        </button>
      ))}
      {asking && (
        <Modal
          title={`${LABEL[asking]} job ${job.id}`}
          onClose={() => setAsking(null)}
          footer={
            <>
              <button className="btn" onClick={() => setAsking(null)}>
                Back
              </button>
              <button
                className="btn danger"
                disabled={busy || (asking === 'reject' && reason.trim() === '')}
                onClick={() => run(asking, reason.trim() || undefined)}
              >
                {LABEL[asking]} job
              </button>
            </>
          }
        >
          <div className="field">
            <label htmlFor="job-reason">Reason{asking === 'reject' ? ' (required)' : ' (optional)'}</label>
            <textarea id="job-reason" rows={3} value={reason} onChange={(e) => setReason(e.target.value)} />
          </div>
        </Modal>
      )}
    </span>
  );
}
