// The certificates list's query parameters from the page's URL: shared by the page and by
// the boot prefetch (src/boot.ts), which must ask for exactly the same URL.
import { DAY_MS } from './format';

export type CertFilters = {
  status: string[];
  environment?: string;
  issuer_id?: string;
  common_name?: string;
  team_id?: string;
  owner_id?: string;
  profile_id?: string;
  expires_before?: string;
  expires_after?: string;
};

export interface CertListParams {
  page: number;
  perPage: number;
  sort: string;
  filters: CertFilters;
  within: string;
  status: string[];
}

export const CERT_DEFAULT_SORT = 'expires_at';
export const CERT_DEFAULT_PER_PAGE = 50;

export function certificateListParams(q: URLSearchParams, now: number = Date.now()): CertListParams {
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = Number(q.get('per_page') ?? CERT_DEFAULT_PER_PAGE) || CERT_DEFAULT_PER_PAGE;
  const sort = q.get('sort') ?? CERT_DEFAULT_SORT;
  const status = (q.get('status') ?? '').split(',').filter(Boolean);
  const within = q.get('within') ?? '';
  const filters: CertFilters = {
    status,
    environment: q.get('environment') ?? undefined,
    issuer_id: q.get('issuer_id') ?? undefined,
    common_name: q.get('common_name') ?? undefined,
    team_id: q.get('team_id') ?? undefined,
    owner_id: q.get('owner_id') ?? undefined,
    profile_id: q.get('profile_id') ?? undefined,
    expires_before: within ? new Date(now + Number(within) * DAY_MS).toISOString() : (q.get('expires_before') ?? undefined),
    expires_after: within ? new Date(now).toISOString() : (q.get('expires_after') ?? undefined),
  };
  return { page, perPage, sort, filters, within, status };
}
