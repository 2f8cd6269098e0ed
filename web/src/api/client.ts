// The REST client: one place that adds the bearer key, builds list queries and turns
// `{"error": {"code", "message", "field"?}}` bodies into ApiError.

import { takeEarly } from './early';

export const API_BASE = '/api/v1';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  readonly retryAfter?: number;

  constructor(status: number, code: string, message: string, field?: string, retryAfter?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  /** The endpoint (or the resource) does not exist on this server. */
  get isNotFound(): boolean {
    return this.status === 404;
  }

  get isUnauthorized(): boolean {
    return this.status === 401;
  }
}

export interface ListResult<T> {
  data: T[];
  total: number;
  page: number;
  per_page: number;
}

export type FilterValue = string | number | boolean | readonly string[] | null | undefined;

export interface ListParams {
  page?: number;
  perPage?: number;
  /** A field name, `-` prefixed for descending. */
  sort?: string;
  fields?: readonly string[];
  /** Equality filters; arrays become `a,b` (matches either). Empty values are left out. */
  filters?: Record<string, FilterValue>;
}

export const MAX_PER_PAGE = 500;

/** The query string of a list call (without `?`), parameters in a stable order. */
export function listQuery(params: ListParams = {}): string {
  const q = new URLSearchParams();
  if (params.page !== undefined) q.set('page', String(Math.max(1, Math.floor(params.page))));
  if (params.perPage !== undefined) {
    q.set('per_page', String(Math.min(MAX_PER_PAGE, Math.max(1, Math.floor(params.perPage)))));
  }
  if (params.sort) q.set('sort', params.sort);
  if (params.fields && params.fields.length > 0) q.set('fields', params.fields.join(','));
  const filters = params.filters ?? {};
  for (const key of Object.keys(filters).sort()) {
    const v = filters[key];
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) {
      const parts = v.map((s) => String(s).trim()).filter((s) => s !== '');
      if (parts.length > 0) q.set(key, parts.join(','));
    } else if (typeof v === 'string') {
      if (v.trim() !== '') q.set(key, v.trim());
    } else {
      q.set(key, String(v));
    }
  }
  return q.toString();
}

/** `/api/v1/certificates/mc%201/versions` from ('certificates', 'mc 1', 'versions'). */
export function apiPath(...segments: string[]): string {
  return `${API_BASE}/${segments.map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join('/')}`;
}

/** Turns a failed response into an ApiError, whatever its body looks like. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  const retry = res.headers.get('retry-after');
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : undefined;
  let text = '';
  try {
    text = await res.text();
  } catch {
    // Body unreadable: fall through to the status line.
  }
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  let field: string | undefined;
  if (text) {
    try {
      const body: unknown = JSON.parse(text);
      const err = (body as { error?: unknown })?.error;
      if (err && typeof err === 'object') {
        const e = err as { code?: unknown; message?: unknown; field?: unknown };
        if (typeof e.code === 'string') code = e.code;
        if (typeof e.message === 'string') message = e.message;
        if (typeof e.field === 'string') field = e.field;
      } else if (typeof err === 'string') {
        message = err;
      }
    } catch {
      message = text.length > 300 ? `${text.slice(0, 300)}…` : text;
    }
  }
  if (res.status === 404 && code === `http_404`) code = 'not_found';
  if (res.status === 429 && retryAfter !== undefined && !message.includes('retry')) {
    message = `${message} (retry after ${retryAfter} s)`;
  }
  return new ApiError(res.status, code, message, field, retryAfter);
}

export interface ClientOptions {
  /** The current API key, or null (auth off or signed out). */
  getKey: () => string | null;
  /** Called when a request that carried a key is refused with 401. */
  onUnauthorized?: () => void;
  fetch?: typeof fetch;
  baseUrl?: string;
}

export interface RequestOptions {
  body?: unknown;
  /** A key to use instead of the stored one (sign-in checks). */
  key?: string | null;
  signal?: AbortSignal;
  /** Expect text (PEM) rather than JSON. */
  text?: boolean;
}

export interface ApiClient {
  request<T>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  get<T>(path: string, opts?: RequestOptions): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
  del(path: string): Promise<void>;
  list<T>(resource: string, params?: ListParams, signal?: AbortSignal): Promise<ListResult<T>>;
  /** Counts matching rows with the smallest possible page. */
  count(resource: string, filters?: Record<string, FilterValue>, signal?: AbortSignal): Promise<number>;
}

export function createClient(options: ClientOptions): ApiClient {
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const base = options.baseUrl ?? '';

  async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = {
      Accept: opts.text ? 'application/x-pem-file, text/plain, */*' : 'application/json',
    };
    const key = opts.key !== undefined ? opts.key : options.getKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      const early = method === 'GET' && opts.key === undefined && !opts.text ? takeEarly(base + path) : undefined;
      res = await (early ?? doFetch(base + path, { method, headers, body, signal: opts.signal }));
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network_error', 'Cannot reach the certctl server. Is it running?');
    }
    if (!res.ok) {
      const err = await errorFromResponse(res);
      if (err.isUnauthorized && key && opts.key === undefined) options.onUnauthorized?.();
      throw err;
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (opts.text) return text as T;
    if (text === '') return undefined as T;
    const type = res.headers.get('content-type') ?? '';
    if (!type.includes('json')) return text as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'invalid_response', 'The server answered with malformed JSON');
    }
  }

  return {
    request,
    get: (path, opts) => request('GET', path, opts),
    post: (path, body) => request('POST', path, { body: body ?? {} }),
    put: (path, body) => request('PUT', path, { body }),
    del: (path) => request('DELETE', path),
    list: <T>(resource: string, params: ListParams = {}, signal?: AbortSignal) => {
      const q = listQuery(params);
      return request<ListResult<T>>('GET', `${API_BASE}/${resource}${q ? `?${q}` : ''}`, { signal });
    },
    count: async (resource, filters, signal) => {
      const q = listQuery({ page: 1, perPage: 1, fields: ['id'], filters });
      const r = await request<ListResult<unknown>>('GET', `${API_BASE}/${resource}?${q}`, { signal });
      return r.total;
    },
  };
}

/** A list envelope, a bare array or `{plugins: [...]}`: whatever shape, the rows. */
export function rowsOf<T>(body: unknown): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === 'object') {
    for (const k of ['data', 'items', 'plugins']) {
      const v = (body as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v as T[];
    }
  }
  return [];
}

export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 404 && /no route/i.test(e.message)) return 'Not available on this server.';
    return e.field ? `${e.message} (${e.field})` : e.message;
  }
  if (e instanceof Error) return e.message;
  return String(e);
}
