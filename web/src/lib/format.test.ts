import { describe, expect, it } from 'vitest';
import {
  DAY_MS,
  daysUntil,
  expiryLabel,
  expiryTone,
  formatDate,
  formatDateTime,
  formatSeconds,
  heartbeatHealth,
  humanize,
  localInputToIso,
  plural,
  relativeTime,
  shortFingerprint,
  statusTone,
} from './format';

const NOW = Date.parse('2026-03-10T12:00:00Z');

describe('dates', () => {
  it('formats date-times in a given zone', () => {
    expect(formatDateTime('2026-11-26T01:23:43.455Z', 'UTC')).toBe('2026-11-26 01:23');
    expect(formatDateTime('2026-11-26T01:23:43.455Z', 'Asia/Tokyo')).toBe('2026-11-26 10:23');
    expect(formatDateTime('2026-01-01T00:00:00Z', 'America/New_York')).toBe('2025-12-31 19:00');
    expect(formatDate('2026-11-26T01:23:43Z', 'UTC')).toBe('2026-11-26');
  });

  it('shows a dash for missing or malformed dates', () => {
    expect(formatDateTime(null)).toBe('—');
    expect(formatDateTime('not a date')).toBe('—');
    expect(formatDate(undefined)).toBe('—');
  });

  it('converts datetime-local input to RFC 3339 UTC', () => {
    expect(localInputToIso('')).toBeNull();
    expect(localInputToIso('2026-03-10T12:00Z')).toBe('2026-03-10T12:00:00.000Z');
    expect(localInputToIso('garbage')).toBeNull();
  });
});

describe('days until', () => {
  it('counts whole days, negative once past', () => {
    expect(daysUntil(new Date(NOW + 30 * DAY_MS).toISOString(), NOW)).toBe(30);
    expect(daysUntil(new Date(NOW + 30 * DAY_MS - 1).toISOString(), NOW)).toBe(29);
    expect(daysUntil(new Date(NOW + 3_600_000).toISOString(), NOW)).toBe(0);
    expect(daysUntil(new Date(NOW - 3_600_000).toISOString(), NOW)).toBe(-1);
    expect(daysUntil(new Date(NOW - 10 * DAY_MS).toISOString(), NOW)).toBe(-10);
    expect(daysUntil(null, NOW)).toBeNull();
  });

  it('labels expiry for people', () => {
    expect(expiryLabel(new Date(NOW + 12 * DAY_MS + 5).toISOString(), NOW)).toBe('in 12 days');
    expect(expiryLabel(new Date(NOW + DAY_MS + 5).toISOString(), NOW)).toBe('in 1 day');
    expect(expiryLabel(new Date(NOW + 3_600_000).toISOString(), NOW)).toBe('expires today');
    expect(expiryLabel(new Date(NOW - 3_600_000).toISOString(), NOW)).toBe('expired today');
    expect(expiryLabel(new Date(NOW - 3 * DAY_MS).toISOString(), NOW)).toBe('expired 3 days ago');
    expect(expiryLabel(null, NOW)).toBe('—');
  });

  it('relative times in both directions', () => {
    expect(relativeTime(new Date(NOW - 2000).toISOString(), NOW)).toBe('just now');
    expect(relativeTime(new Date(NOW - 42_000).toISOString(), NOW)).toBe('42 s ago');
    expect(relativeTime(new Date(NOW - 5 * 60_000).toISOString(), NOW)).toBe('5 min ago');
    expect(relativeTime(new Date(NOW - 3 * 3_600_000).toISOString(), NOW)).toBe('3 h ago');
    expect(relativeTime(new Date(NOW - 2 * DAY_MS).toISOString(), NOW)).toBe('2 d ago');
    expect(relativeTime(new Date(NOW + 4 * 60_000).toISOString(), NOW)).toBe('in 4 min');
    expect(relativeTime(null, NOW)).toBe('never');
  });
});

describe('status colours', () => {
  it('maps certificate statuses', () => {
    expect(statusTone('Active')).toBe('ok');
    expect(statusTone('Expiring')).toBe('warn');
    expect(statusTone('Expired')).toBe('bad');
    expect(statusTone('Revoked')).toBe('bad');
    expect(statusTone('Failed')).toBe('bad');
    expect(statusTone('RenewalInProgress')).toBe('info');
    expect(statusTone('Pending')).toBe('info');
    expect(statusTone('Archived')).toBe('muted');
  });

  it('maps job, agent and severity statuses; unknown is muted', () => {
    expect(statusTone('Completed')).toBe('ok');
    expect(statusTone('AwaitingApproval')).toBe('warn');
    expect(statusTone('Cancelled')).toBe('muted');
    expect(statusTone('Online')).toBe('ok');
    expect(statusTone('Offline')).toBe('bad');
    expect(statusTone('Critical')).toBe('bad');
    expect(statusTone('Warning')).toBe('warn');
    expect(statusTone('Whatever')).toBe('muted');
    expect(statusTone(null)).toBe('muted');
  });

  it('colours remaining lifetime', () => {
    expect(expiryTone(null)).toBe('muted');
    expect(expiryTone(-1)).toBe('bad');
    expect(expiryTone(6)).toBe('bad');
    expect(expiryTone(7)).toBe('warn');
    expect(expiryTone(29)).toBe('warn');
    expect(expiryTone(30)).toBe('ok');
  });

  it('grades heartbeats', () => {
    expect(heartbeatHealth(null, NOW)).toBe('never');
    expect(heartbeatHealth(new Date(NOW - 60_000).toISOString(), NOW)).toBe('healthy');
    expect(heartbeatHealth(new Date(NOW - 10 * 60_000).toISOString(), NOW)).toBe('late');
    expect(heartbeatHealth(new Date(NOW - 60 * 60_000).toISOString(), NOW)).toBe('stale');
  });
});

describe('text', () => {
  it('humanizes identifiers', () => {
    expect(humanize('RenewalInProgress')).toBe('Renewal in progress');
    expect(humanize('AwaitingCSR')).toBe('Awaiting CSR');
    expect(humanize('certificate_created')).toBe('Certificate created');
    expect(humanize(null)).toBe('—');
  });

  it('formats seconds, fingerprints and plurals', () => {
    expect(formatSeconds(7_776_000)).toBe('90 d');
    expect(formatSeconds(3600)).toBe('1 h');
    expect(formatSeconds(300)).toBe('5 min');
    expect(formatSeconds(90)).toBe('90 s');
    expect(formatSeconds(null)).toBe('—');
    expect(shortFingerprint('AABBCCDDEEFF00112233', 4)).toBe('aa:bb:cc:dd…');
    expect(shortFingerprint('aabb', 4)).toBe('aa:bb');
    expect(plural(1, 'job')).toBe('1 job');
    expect(plural(10_000, 'certificate')).toBe('10,000 certificates');
  });
});
