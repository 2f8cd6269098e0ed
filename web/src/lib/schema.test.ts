import { describe, expect, it } from 'vitest';
import { fieldKind, initialValues, toPayload, usableSchema } from './schema';
import type { JsonSchema } from './schema';
import { formSchema } from './resources';

const acme: JsonSchema = {
  type: 'object',
  required: ['directory_url', 'email'],
  properties: {
    directory_url: { type: 'string', format: 'uri', default: 'https://acme.example/dir' },
    email: { type: 'string', format: 'email' },
    eab_hmac: { type: 'string', writeOnly: true },
    challenge: { type: 'string', enum: ['http-01', 'dns-01'], default: 'http-01' },
    timeout_seconds: { type: 'integer', minimum: 1, maximum: 600 },
    insecure: { type: 'boolean' },
    domains: { type: 'array', items: { type: 'string' } },
    extra: { type: 'object' },
  },
};

describe('schema forms', () => {
  it('picks a widget per field', () => {
    const p = acme.properties as Record<string, JsonSchema>;
    expect(fieldKind(p.directory_url)).toBe('text');
    expect(fieldKind(p.eab_hmac)).toBe('password');
    expect(fieldKind(p.challenge)).toBe('select');
    expect(fieldKind(p.timeout_seconds)).toBe('integer');
    expect(fieldKind(p.insecure)).toBe('boolean');
    expect(fieldKind(p.domains)).toBe('list');
    expect(fieldKind(p.extra)).toBe('json');
    expect(fieldKind({ type: 'object', properties: { a: { type: 'string' } } })).toBe('object');
  });

  it('starts from defaults and converts back to typed JSON', () => {
    const v = initialValues(acme);
    expect(v.directory_url).toBe('https://acme.example/dir');
    expect(v.challenge).toBe('http-01');
    expect(v.insecure).toBe(false);
    const { value, errors } = toPayload(acme, { ...v, email: 'ops@example.com', timeout_seconds: '30', domains: 'a.example, b.example\nc.example', extra: '{"x": 1}' });
    expect(errors).toEqual({});
    expect(value).toEqual({
      directory_url: 'https://acme.example/dir',
      email: 'ops@example.com',
      challenge: 'http-01',
      timeout_seconds: 30,
      insecure: false,
      domains: ['a.example', 'b.example', 'c.example'],
      extra: { x: 1 },
    });
  });

  it('reports required, range, enum and JSON errors', () => {
    const { errors } = toPayload(acme, { directory_url: '', email: '', challenge: 'tls-alpn', timeout_seconds: '0', extra: '{bad', insecure: false });
    expect(errors).toEqual({
      directory_url: 'required',
      email: 'required',
      challenge: 'must be one of http-01, dns-01',
      timeout_seconds: 'must be at least 1',
      extra: 'is not valid JSON',
    });
  });

  it('sends null for cleared fields when updating', () => {
    const { value } = toPayload(acme, { directory_url: 'x', email: 'e', challenge: '', timeout_seconds: '', domains: '', insecure: true }, 'update');
    expect(value.challenge).toBeNull();
    expect(value.timeout_seconds).toBeNull();
    expect(value.domains).toEqual([]);
  });

  it('round-trips an existing object, nested objects included', () => {
    const nested: JsonSchema = { type: 'object', properties: { name: { type: 'string' }, config: acme } };
    const v = initialValues(nested, { name: 'acme', config: { directory_url: 'https://d', email: 'e@x', domains: ['a', 'b'], extra: { y: 2 } } });
    expect((v.config as Record<string, unknown>).domains).toBe('a, b');
    const { value, errors } = toPayload(nested, v);
    expect(errors).toEqual({});
    expect(value).toEqual({ name: 'acme', config: { directory_url: 'https://d', email: 'e@x', challenge: 'http-01', insecure: false, domains: ['a', 'b'], extra: { y: 2 } } });
    const bad = toPayload(nested, { name: 'n', config: { ...(v.config as object), email: '' } });
    expect(bad.errors).toEqual({ 'config.email': 'required' });
  });

  it('accepts only object schemas with properties from plugins', () => {
    expect(usableSchema(null)).toBeNull();
    expect(usableSchema({ type: 'object' })).toBeNull();
    expect(usableSchema(acme)).toBe(acme);
  });

  it('derives resource forms from the OpenAPI schema', () => {
    const cert: JsonSchema = {
      type: 'object',
      required: ['name', 'common_name'],
      properties: {
        common_name: { type: 'string' },
        id: { type: 'string', readOnly: false },
        issuer_id: { type: 'string' },
        name: { type: 'string' },
        status: { type: 'string', readOnly: true },
      },
    };
    const s = formSchema(cert, { order: ['name', 'common_name'], includeId: true });
    expect(Object.keys(s.properties ?? {})).toEqual(['id', 'name', 'common_name', 'issuer_id']);
    expect(s.properties?.issuer_id['x-ref']).toBe('issuers');
    expect(s.required).toEqual(['name', 'common_name']);
    expect(Object.keys(formSchema(cert).properties ?? {})).not.toContain('id');
  });
});
