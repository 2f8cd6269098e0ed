import { describe, expect, it, vi } from 'vitest';
import { ApiError, apiPath, createClient, describeError, errorFromResponse, listQuery, rowsOf } from './client';
import { hasRoute, routesOf } from './capabilities';

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

function mockFetch(...responses: Response[]) {
  const f = vi.fn<typeof fetch>();
  for (const r of responses) f.mockResolvedValueOnce(r);
  return f;
}

describe('listQuery', () => {
  it('builds page, per_page, sort, fields and filters in a stable order', () => {
    expect(
      listQuery({
        page: 2,
        perPage: 50,
        sort: '-expires_at',
        fields: ['id', 'name'],
        filters: { status: ['Active', 'Expiring'], environment: 'production' },
      }),
    ).toBe('page=2&per_page=50&sort=-expires_at&fields=id%2Cname&environment=production&status=Active%2CExpiring');
  });

  it('drops empty filters and keeps false booleans', () => {
    expect(listQuery({ filters: { status: [], name: '  ', owner_id: null, team_id: undefined, read: false } })).toBe('read=false');
  });

  it('clamps per_page to the server maximum and page to at least 1', () => {
    expect(listQuery({ page: 0, perPage: 10_000 })).toBe('page=1&per_page=500');
    expect(listQuery({ perPage: 0 })).toBe('per_page=1');
  });

  it('trims array members and skips blank ones', () => {
    expect(listQuery({ filters: { status: [' Active ', ''] } })).toBe('status=Active');
  });
});

describe('apiPath', () => {
  it('encodes ids but not the resource', () => {
    expect(apiPath('certificates', 'mc 1/x', 'versions')).toBe('/api/v1/certificates/mc%201%2Fx/versions');
    expect(apiPath('audit/api-calls')).toBe('/api/v1/audit/api-calls');
  });
});

describe('createClient', () => {
  it('sends the bearer key and JSON body', async () => {
    const f = mockFetch(json(201, { id: 'mc-1' }));
    const api = createClient({ getKey: () => 'k-123', fetch: f });
    const out = await api.post<{ id: string }>('/api/v1/certificates', { name: 'a' });
    expect(out).toEqual({ id: 'mc-1' });
    const [url, init] = f.mock.calls[0];
    expect(url).toBe('/api/v1/certificates');
    const headers = init?.headers as Record<string, string>;
    expect(headers.Authorization).toBe('Bearer k-123');
    expect(headers['Content-Type']).toBe('application/json');
    expect(init?.method).toBe('POST');
    expect(init?.body).toBe('{"name":"a"}');
  });

  it('sends no Authorization header without a key', async () => {
    const f = mockFetch(json(200, { auth_type: 'none' }));
    const api = createClient({ getKey: () => null, fetch: f });
    await api.get('/api/v1/auth/info');
    expect((f.mock.calls[0][1]?.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it('an explicit key overrides the stored one, and null sends none', async () => {
    const f = mockFetch(json(200, {}), json(200, {}));
    const api = createClient({ getKey: () => 'stored', fetch: f });
    await api.get('/x', { key: 'typed' });
    await api.get('/y', { key: null });
    expect((f.mock.calls[0][1]?.headers as Record<string, string>).Authorization).toBe('Bearer typed');
    expect((f.mock.calls[1][1]?.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it('lists with the query string and returns the envelope', async () => {
    const env = { data: [{ id: 'a' }], total: 1, page: 1, per_page: 25 };
    const f = mockFetch(json(200, env));
    const api = createClient({ getKey: () => 'k', fetch: f });
    expect(await api.list('jobs', { perPage: 25, filters: { status: 'Failed' } })).toEqual(env);
    expect(f.mock.calls[0][0]).toBe('/api/v1/jobs?per_page=25&status=Failed');
  });

  it('counts with a one-row page of ids', async () => {
    const f = mockFetch(json(200, { data: [{ id: 'a' }], total: 42, page: 1, per_page: 1 }));
    const api = createClient({ getKey: () => 'k', fetch: f });
    expect(await api.count('certificates', { status: 'Active' })).toBe(42);
    expect(f.mock.calls[0][0]).toBe('/api/v1/certificates?page=1&per_page=1&fields=id&status=Active');
  });

  it('parses the error envelope into ApiError with code, message and field', async () => {
    const f = mockFetch(json(400, { error: { code: 'validation_error', message: 'sans: must be a list', field: 'sans' } }));
    const api = createClient({ getKey: () => 'k', fetch: f });
    const err = await api.post('/api/v1/certificates', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'validation_error', message: 'sans: must be a list', field: 'sans' });
  });

  it('calls onUnauthorized on a 401 with the stored key, but not for an explicit key', async () => {
    const onUnauthorized = vi.fn();
    const body = { error: { code: 'unauthorized', message: 'invalid API key' } };
    const f = mockFetch(json(401, body), json(401, body));
    const api = createClient({ getKey: () => 'old', fetch: f, onUnauthorized });
    await expect(api.get('/api/v1/certificates')).rejects.toMatchObject({ status: 401, isUnauthorized: true });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    await expect(api.get('/api/v1/auth/check', { key: 'typo' })).rejects.toMatchObject({ status: 401 });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('turns network failures into a readable ApiError', async () => {
    const f = vi.fn<typeof fetch>().mockRejectedValueOnce(new TypeError('Failed to fetch'));
    const api = createClient({ getKey: () => null, fetch: f });
    await expect(api.get('/health')).rejects.toMatchObject({ status: 0, code: 'network_error' });
  });

  it('returns undefined for 204 and text for PEM', async () => {
    const f = mockFetch(new Response(null, { status: 204 }), new Response('-----BEGIN CERTIFICATE-----\n', { status: 200, headers: { 'content-type': 'application/x-pem-file' } }));
    const api = createClient({ getKey: () => 'k', fetch: f });
    expect(await api.del('/api/v1/teams/t1')).toBeUndefined();
    expect(await api.get('/api/v1/issuers/iss-local/ca', { text: true })).toBe('-----BEGIN CERTIFICATE-----\n');
  });
});

describe('errorFromResponse', () => {
  it('falls back to the body text or status for non-JSON errors', async () => {
    const e = await errorFromResponse(new Response('upstream down', { status: 502, statusText: 'Bad Gateway' }));
    expect(e).toMatchObject({ status: 502, code: 'http_502', message: 'upstream down' });
    const empty = await errorFromResponse(new Response(null, { status: 404 }));
    expect(empty).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('keeps Retry-After of a 429', async () => {
    const e = await errorFromResponse(json(429, { error: { code: 'rate_limited', message: 'rate limit exceeded' } }, { 'retry-after': '3' }));
    expect(e.retryAfter).toBe(3);
    expect(e.message).toContain('retry after 3 s');
  });

  it('describes a missing route as not available on this server', () => {
    expect(describeError(new ApiError(404, 'not_found', 'no route for GET /api/v1/plugins'))).toBe('Not available on this server.');
    expect(describeError(new ApiError(400, 'validation_error', 'bad', 'name'))).toBe('bad (name)');
  });
});

describe('rowsOf', () => {
  it('accepts an envelope, a bare array or a plugins object', () => {
    expect(rowsOf([{ id: 1 }])).toEqual([{ id: 1 }]);
    expect(rowsOf({ data: [{ id: 2 }], total: 1 })).toEqual([{ id: 2 }]);
    expect(rowsOf({ plugins: [{ id: 3 }] })).toEqual([{ id: 3 }]);
    expect(rowsOf(null)).toEqual([]);
  });
});

describe('capabilities', () => {
  const doc = {
    paths: {
      '/api/v1/certificates/{id}/renew': { post: {} },
      '/api/v1/certificates/{cert_id}/revoke': { post: {} },
      '/.well-known/pki/ocsp/{issuer}': { get: {}, post: {} },
    },
  };
  it('matches routes whatever the parameter names', () => {
    const routes = routesOf(doc);
    expect(hasRoute(routes, 'POST', '/api/v1/certificates/{id}/revoke')).toBe(true);
    expect(hasRoute(routes, 'GET', '/api/v1/certificates/{id}/export/pem')).toBe(false);
    expect(hasRoute(routes, '*', '/.well-known/pki/ocsp/{issuer_id}')).toBe(true);
    expect(hasRoute(undefined, 'GET', '/x')).toBeUndefined();
  });
});
