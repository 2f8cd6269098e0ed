import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useApi, useCapability } from '../api/context';
import { describeError } from '../api/client';
import { Link } from '../lib/router';
import { digestSentText, isDigestNotConfigured } from '../lib/notifications';
import { useNotifiers } from '../components/Notifiers';
import { ErrorBox, PageHeader, Panel, Spinner, Unavailable, useToast } from '../components/ui';

type SendResult = { tone: 'ok' | 'bad'; text: string } | null;

/** What to set for the digest (the server's own message, when it gave one, comes first). */
function NotConfigured({ message }: { message?: string }) {
  return (
    <div className="alert tone-warn digest-not-configured" role="status" data-testid="digest-not-configured">
      <div>
        <strong>The digest is not configured — set CERTCTL_SMTP_* to enable it.</strong>
        <p>
          The digest is e-mailed through the <code>email</code> notification channel. Set <code>CERTCTL_SMTP_HOST</code> and{' '}
          <code>CERTCTL_SMTP_FROM_ADDRESS</code> (and as needed <code>CERTCTL_SMTP_PORT</code>, <code>CERTCTL_SMTP_USERNAME</code>,{' '}
          <code>CERTCTL_SMTP_PASSWORD</code>, <code>CERTCTL_SMTP_USE_TLS</code>), install the <code>email</code> notifier plugin, then restart the
          server. Recipients: <code>CERTCTL_DIGEST_RECIPIENTS</code>, else the certificate owners; <code>CERTCTL_DIGEST_ENABLED=true</code> sends it
          every <code>CERTCTL_DIGEST_INTERVAL</code> (24h).
        </p>
        {message && <p className="muted small">Server: {message}</p>}
      </div>
    </div>
  );
}

export function Digest() {
  const api = useApi();
  const toast = useToast();
  const hasPreview = useCapability('digestPreview');
  const hasSend = useCapability('digestSend');
  const notifiers = useNotifiers();
  // The server says up front whether an email channel exists; both digest endpoints answer
  // 503 without one, so the preview is not asked for then.
  const known = notifiers.available === false || notifiers.query.isError || notifiers.listing !== undefined;
  const canSend = notifiers.listing?.digestCanSend ?? null;
  const preview = useQuery({
    queryKey: ['digest', 'preview'],
    queryFn: ({ signal }) => api.get<string>('/api/v1/digest/preview', { text: true, signal }),
    enabled: hasPreview === true && known && canSend !== false,
    staleTime: 30_000,
    retry: (n, e) => !isDigestNotConfigured(e) && n < 2,
  });
  const [sending, setSending] = useState(false);
  const [result, setResult] = useState<SendResult>(null);
  const [sendNotConfigured, setSendNotConfigured] = useState<string | null>(null);

  const previewNotConfigured = preview.isError && isDigestNotConfigured(preview.error);
  const notConfigured = canSend === false || previewNotConfigured || sendNotConfigured !== null;
  const serverMessage = sendNotConfigured ?? (previewNotConfigured ? describeError(preview.error) : undefined);

  async function send() {
    setSending(true);
    setResult(null);
    try {
      const body = await api.post<unknown>('/api/v1/digest/send');
      const text = digestSentText(body);
      setResult({ tone: 'ok', text });
      toast(text);
    } catch (e) {
      if (isDigestNotConfigured(e)) setSendNotConfigured(describeError(e));
      const text = `The digest was not sent: ${describeError(e)}`;
      setResult({ tone: 'bad', text });
      toast(text, 'bad');
    } finally {
      setSending(false);
    }
  }

  if (hasPreview === false && hasSend === false) {
    return (
      <>
        <PageHeader title="Digest" />
        <Panel>
          <Unavailable what="the certificate digest" />
        </Panel>
      </>
    );
  }

  const waiting = hasPreview === undefined || (!known && notifiers.available !== false);
  return (
    <>
      <PageHeader
        title="Digest"
        subtitle={
          <>
            A summary e-mail of the inventory: totals by status, certificates expiring within 30 days, recent jobs, active agents. Delivery channels are on the{' '}
            <Link to="/notifications">notifications</Link> page.
          </>
        }
        actions={
          <>
            {hasPreview !== false && !notConfigured && (
              <button className="btn" onClick={() => preview.refetch()} disabled={!preview.isSuccess || preview.isFetching}>
                Refresh preview
              </button>
            )}
            {hasSend !== false && (
              <button
                className="btn primary"
                onClick={send}
                disabled={sending || notConfigured || waiting}
                title={notConfigured ? 'Configure the email channel (CERTCTL_SMTP_*) first' : 'E-mail the digest to its recipients now'}
              >
                {sending ? 'Sending…' : 'Send now'}
              </button>
            )}
          </>
        }
      />
      {result && (
        <div className={`alert tone-${result.tone}`} role={result.tone === 'bad' ? 'alert' : 'status'} data-testid="digest-send-result">
          {result.text}
        </div>
      )}
      {notConfigured && <NotConfigured message={serverMessage} />}
      <Panel title="Preview">
        {waiting && <Spinner />}
        {hasPreview === false && <Unavailable what="the digest preview" />}
        {notConfigured && <p className="muted">No preview until the email channel is configured.</p>}
        {!notConfigured && preview.isLoading && <Spinner label="Rendering the digest…" />}
        {preview.isError && !previewNotConfigured && <ErrorBox error={preview.error} what="the digest preview" />}
        {!notConfigured && preview.isSuccess && (
          // sandbox="" : no scripts, no same-origin access, no navigation; the digest is plain HTML.
          <iframe className="digest-preview" title="Digest preview" sandbox="" srcDoc={preview.data} />
        )}
      </Panel>
    </>
  );
}
