// Formatting helpers shared by every page. Pure functions: `now` is a parameter for tests.

export const DAY_MS = 86_400_000;

function parse(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

// Building an Intl.DateTimeFormat is costly; tables format hundreds of dates per render.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string | undefined): Intl.DateTimeFormat {
  const key = timeZone ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(key, f);
  }
  return f;
}

/** `2026-11-26 01:23` in the given (default: the browser's) time zone; '—' when absent. */
export function formatDateTime(iso: string | null | undefined, timeZone?: string): string {
  const t = parse(iso);
  if (t === null) return '—';
  const parts = formatter(timeZone).formatToParts(new Date(t));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}`;
}

/** `2026-11-26` (time zone as above). */
export function formatDate(iso: string | null | undefined, timeZone?: string): string {
  const s = formatDateTime(iso, timeZone);
  return s === '—' ? s : s.slice(0, 10);
}

/** Whole days from now until `iso` (negative once past; 0 within the coming day); null if absent. */
export function daysUntil(iso: string | null | undefined, now: number = Date.now()): number | null {
  const t = parse(iso);
  if (t === null) return null;
  return Math.floor((t - now) / DAY_MS);
}

/** "in 12 days", "expires today", "expired 3 days ago", '—'. */
export function expiryLabel(iso: string | null | undefined, now: number = Date.now()): string {
  const t = parse(iso);
  if (t === null) return '—';
  if (t <= now) {
    const ago = Math.floor((now - t) / DAY_MS);
    return ago === 0 ? 'expired today' : `expired ${ago} ${ago === 1 ? 'day' : 'days'} ago`;
  }
  const d = Math.floor((t - now) / DAY_MS);
  if (d === 0) return 'expires today';
  return `in ${d} ${d === 1 ? 'day' : 'days'}`;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago", "in 4 min". */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  const t = parse(iso);
  if (t === null) return 'never';
  const diff = Math.round((now - t) / 1000);
  const abs = Math.abs(diff);
  let text: string;
  if (abs < 5) return 'just now';
  if (abs < 60) text = `${abs} s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
  else if (abs < 86_400) text = `${Math.floor(abs / 3600)} h`;
  else text = `${Math.floor(abs / 86_400)} d`;
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** 7_776_000 → "90 d"; 3600 → "1 h"; 90 → "90 s". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds % 86_400 === 0 && seconds >= 86_400) return `${seconds / 86_400} d`;
  if (seconds % 3600 === 0 && seconds >= 3600) return `${seconds / 3600} h`;
  if (seconds % 60 === 0 && seconds >= 60) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'muted';

const TONES: Record<string, Tone> = {
  // certificates
  Active: 'ok',
  Expiring: 'warn',
  Expired: 'bad',
  RenewalInProgress: 'info',
  Failed: 'bad',
  Revoked: 'bad',
  Archived: 'muted',
  Pending: 'info',
  // jobs
  AwaitingCSR: 'info',
  AwaitingApproval: 'warn',
  Running: 'info',
  Completed: 'ok',
  Cancelled: 'muted',
  // agents
  Online: 'ok',
  Degraded: 'warn',
  Offline: 'bad',
  // notifications
  Sent: 'ok',
  DeadLetter: 'bad',
  // severities
  Warning: 'warn',
  Error: 'bad',
  Critical: 'bad',
};

/** The colour family of a status of any resource (unknown statuses are muted). */
export function statusTone(status: string | null | undefined): Tone {
  return (status && TONES[status]) || 'muted';
}

/** The colour of a remaining lifetime: red under 7 days (or past), amber under 30. */
export function expiryTone(days: number | null): Tone {
  if (days === null) return 'muted';
  if (days < 7) return 'bad';
  if (days < 30) return 'warn';
  return 'ok';
}

/** Spaces a CamelCase status for display: "RenewalInProgress" → "Renewal in progress". */
export function humanize(s: string | null | undefined): string {
  if (!s) return '—';
  const spaced = s
    .replace(/_/g, ' ')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2');
  return spaced.charAt(0).toUpperCase() + spaced.slice(1).toLowerCase().replace(/\bcsr\b/, 'CSR');
}

export type HeartbeatHealth = 'healthy' | 'late' | 'stale' | 'never';

/** Heartbeat freshness: healthy within 5 min (the server's offline threshold), late within 15. */
export function heartbeatHealth(iso: string | null | undefined, now: number = Date.now()): HeartbeatHealth {
  const t = parse(iso);
  if (t === null) return 'never';
  const age = now - t;
  if (age <= 5 * 60_000) return 'healthy';
  if (age <= 15 * 60_000) return 'late';
  return 'stale';
}

export function heartbeatTone(h: HeartbeatHealth): Tone {
  return h === 'healthy' ? 'ok' : h === 'late' ? 'warn' : h === 'stale' ? 'bad' : 'muted';
}

/** "ab:cd:ef…" for fingerprints; keeps the first `groups` byte pairs. */
export function shortFingerprint(hex: string | null | undefined, groups = 8): string {
  if (!hex) return '—';
  const pairs = hex.toLowerCase().match(/.{1,2}/g) ?? [];
  return pairs.slice(0, groups).join(':') + (pairs.length > groups ? '…' : '');
}

/** `datetime-local` input value ↔ RFC 3339 UTC. */
export function localInputToIso(value: string): string | null {
  if (!value) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}
