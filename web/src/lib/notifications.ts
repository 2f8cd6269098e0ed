// Pure helpers for the notification inbox, the notifier channel list and the digest page.

import { ApiError } from '../api/client';

/** Delivery states of a notification, in the order the filter offers them. */
export const DELIVERY_STATUSES = ['Pending', 'Sent', 'Failed', 'DeadLetter'] as const;

/** Filter labels: "DeadLetter" reads better as what it means to an operator. */
export const DELIVERY_LABEL: Record<string, string> = {
  Pending: 'Pending',
  Sent: 'Sent',
  Failed: 'Failed (retrying)',
  DeadLetter: 'Dead-lettered',
};

/** The server requeues only Failed and DeadLetter rows (409 otherwise). */
export function canRequeue(n: { status: string | null | undefined }): boolean {
  return n.status === 'Failed' || n.status === 'DeadLetter';
}

/** "1 attempt", "5 attempts"; null before the first attempt (nothing worth showing). */
export function attemptsLabel(attempts: number | null | undefined): string | null {
  if (!attempts || attempts <= 0) return null;
  return `${attempts} ${attempts === 1 ? 'attempt' : 'attempts'}`;
}

/** One configured notifier channel as `GET /api/v1/notifiers` lists it. */
export interface NotifierChannel {
  channel: string;
  plugin: string;
  enabledBy: string | null;
  /** Configuration key → display text (secrets arrive already masked as `***`). */
  config: [string, string][];
  grantedHosts: string[];
  /** Notification types routed to this channel by default. */
  types: string[];
}

export interface NotifierListing {
  channels: NotifierChannel[];
  /** `CERTCTL_NOTIFICATION_ROUTES`: type → channels. */
  routes: [string, string[]][];
  /** Whether the digest can be e-mailed (an `email` channel exists); null when the server does not say. */
  digestCanSend: boolean | null;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function display(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** Reads the `GET /api/v1/notifiers` body defensively (unknown fields ignored, missing ones empty). */
export function parseNotifiers(body: unknown): NotifierListing {
  const o = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const rows = Array.isArray(body) ? body : Array.isArray(o.data) ? o.data : [];
  const channels: NotifierChannel[] = [];
  for (const r of rows) {
    if (!r || typeof r !== 'object') continue;
    const c = r as Record<string, unknown>;
    const name = typeof c.channel === 'string' ? c.channel : typeof c.name === 'string' ? c.name : null;
    if (!name) continue;
    const config = c.config && typeof c.config === 'object' && !Array.isArray(c.config) ? Object.entries(c.config as Record<string, unknown>) : [];
    channels.push({
      channel: name,
      plugin: typeof c.plugin === 'string' ? c.plugin : name,
      enabledBy: typeof c.enabled_by === 'string' ? c.enabled_by : null,
      config: config.map(([k, v]) => [k, display(v)] as [string, string]).sort(([a], [b]) => a.localeCompare(b)),
      grantedHosts: strings(c.granted_hosts),
      types: strings(c.types),
    });
  }
  const routes: [string, string[]][] =
    o.routes && typeof o.routes === 'object' && !Array.isArray(o.routes)
      ? Object.entries(o.routes as Record<string, unknown>).map(([t, v]) => [t, strings(v)] as [string, string[]])
      : [];
  const digest = o.digest && typeof o.digest === 'object' ? (o.digest as Record<string, unknown>) : null;
  const digestCanSend = typeof digest?.can_send === 'boolean' ? digest.can_send : null;
  return { channels, routes, digestCanSend };
}

/**
 * A 503 from the digest endpoints that means "no email channel" (set CERTCTL_SMTP_*), as
 * opposed to a delivery failure or an unavailable database, which are 503s too.
 */
export function isDigestNotConfigured(e: unknown): boolean {
  if (!(e instanceof ApiError) || e.status !== 503) return false;
  return /CERTCTL_SMTP|email channel|not configured/i.test(e.message) && !/delivery failed|database unavailable/i.test(e.message);
}

/** The `POST /api/v1/digest/send` answer as one sentence. */
export function digestSentText(body: unknown): string {
  const recipients = strings((body as { recipients?: unknown } | null)?.recipients);
  if (recipients.length === 0) return 'Digest sent.';
  const shown = recipients.slice(0, 5).join(', ');
  const more = recipients.length > 5 ? ` and ${recipients.length - 5} more` : '';
  return `Digest sent to ${recipients.length} ${recipients.length === 1 ? 'recipient' : 'recipients'}: ${shown}${more}.`;
}
