import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import { attemptsLabel, canRequeue, digestSentText, isDigestNotConfigured, parseNotifiers } from './notifications';

describe('requeue', () => {
  it('is offered for Failed and DeadLetter rows only', () => {
    expect(canRequeue({ status: 'Failed' })).toBe(true);
    expect(canRequeue({ status: 'DeadLetter' })).toBe(true);
    for (const s of ['Pending', 'Sent', '', null, undefined]) expect(canRequeue({ status: s })).toBe(false);
  });

  it('labels attempts, nothing before the first', () => {
    expect(attemptsLabel(0)).toBeNull();
    expect(attemptsLabel(null)).toBeNull();
    expect(attemptsLabel(1)).toBe('1 attempt');
    expect(attemptsLabel(5)).toBe('5 attempts');
  });
});

describe('parseNotifiers', () => {
  it('reads the server listing: channels, masked config, hosts, types, routes, digest', () => {
    const l = parseNotifiers({
      total: 2,
      page: 1,
      per_page: 2,
      data: [
        {
          channel: 'webhook',
          plugin: 'webhook',
          enabled_by: 'CERTCTL_WEBHOOK_URL',
          config: { url: '***', secret: '***', timeout: 5 },
          granted_hosts: ['hooks.example.com'],
          types: ['RenewalFailure'],
        },
        { channel: 'email', plugin: 'email', enabled_by: 'CERTCTL_SMTP_HOST', config: { host: 'smtp.example.com', password: '***' }, granted_hosts: ['smtp.example.com:587'], types: [] },
      ],
      routes: { RenewalFailure: ['webhook'] },
      digest: { can_send: true },
    });
    expect(l.channels.map((c) => c.channel)).toEqual(['webhook', 'email']);
    expect(l.channels[0].config).toEqual([
      ['secret', '***'],
      ['timeout', '5'],
      ['url', '***'],
    ]);
    expect(l.channels[0].enabledBy).toBe('CERTCTL_WEBHOOK_URL');
    expect(l.channels[1].grantedHosts).toEqual(['smtp.example.com:587']);
    expect(l.channels[0].types).toEqual(['RenewalFailure']);
    expect(l.routes).toEqual([['RenewalFailure', ['webhook']]]);
    expect(l.digestCanSend).toBe(true);
  });

  it('copes with an empty listing, a bare array and junk', () => {
    expect(parseNotifiers({ total: 0, data: [], routes: {}, digest: { can_send: false } })).toEqual({ channels: [], routes: [], digestCanSend: false });
    expect(parseNotifiers([{ name: 'slack' }]).channels[0]).toMatchObject({ channel: 'slack', plugin: 'slack', enabledBy: null, config: [] });
    expect(parseNotifiers(null)).toEqual({ channels: [], routes: [], digestCanSend: null });
    expect(parseNotifiers({ data: [null, 3, { plugin: 'no-name' }] }).channels).toEqual([]);
  });
});

describe('digest', () => {
  it('tells "no email channel" from other 503s', () => {
    const notConfigured = new ApiError(503, 'service_unavailable', 'the digest needs the email channel: set CERTCTL_SMTP_HOST and CERTCTL_SMTP_FROM_ADDRESS');
    expect(isDigestNotConfigured(notConfigured)).toBe(true);
    const worded = new ApiError(503, 'service_unavailable', 'the digest is not configured: it needs the email channel (set CERTCTL_SMTP_HOST and CERTCTL_SMTP_FROM_ADDRESS)');
    expect(isDigestNotConfigured(worded)).toBe(true);
    expect(isDigestNotConfigured(new ApiError(503, 'service_unavailable', 'digest delivery failed: smtp.example.com: connection refused'))).toBe(false);
    expect(isDigestNotConfigured(new ApiError(503, 'service_unavailable', 'database unavailable: pool timed out'))).toBe(false);
    expect(isDigestNotConfigured(new ApiError(409, 'conflict', 'no digest recipients: set CERTCTL_DIGEST_RECIPIENTS'))).toBe(false);
    expect(isDigestNotConfigured(new Error('CERTCTL_SMTP_HOST'))).toBe(false);
  });

  it('summarises a send', () => {
    expect(digestSentText({ sent: true, recipients: ['a@example.com'] })).toBe('Digest sent to 1 recipient: a@example.com.');
    expect(digestSentText({ sent: true, recipients: ['1', '2', '3', '4', '5', '6', '7'] })).toBe('Digest sent to 7 recipients: 1, 2, 3, 4, 5 and 2 more.');
    expect(digestSentText({ sent: true })).toBe('Digest sent.');
    expect(digestSentText(undefined)).toBe('Digest sent.');
  });
});
