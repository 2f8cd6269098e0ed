import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, createClient } from './client';
import type { ApiClient } from './client';
import { keyStore } from './session';
import { OPTIONAL, hasRoute, routesOf } from './capabilities';
import type { Optional } from './capabilities';
import type { AuthCheck, AuthInfo } from './types';
import type { JsonSchema } from '../lib/schema';

export type AuthStatus = 'loading' | 'unreachable' | 'signed-out' | 'signed-in' | 'open';

interface AuthState {
  status: AuthStatus;
  authType?: string;
  actor?: string;
  admin?: boolean;
  /** Why the user is looking at the sign-in form (expired key, …). */
  notice?: string;
}

interface Ctx {
  api: ApiClient;
  auth: AuthState;
  signIn(key: string, remember: boolean): Promise<void>;
  signOut(notice?: string): void;
  retry(): void;
}

const ApiCtx = createContext<Ctx | null>(null);

export function ApiProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  // With a stored key the dashboard renders at once and checks the key in the background
  // (a refused key signs out); only a first visit waits for /auth/info.
  const [auth, setAuth] = useState<AuthState>(() => (keyStore.get() ? { status: 'signed-in', authType: 'api-key' } : { status: 'loading' }));
  const [attempt, setAttempt] = useState(0);
  const statusRef = useRef<AuthStatus>('loading');
  statusRef.current = auth.status;

  const signOut = useCallback(
    (notice?: string) => {
      keyStore.clear();
      queryClient.clear();
      setAuth((a) => ({ status: 'signed-out', authType: a.authType, notice }));
    },
    [queryClient],
  );

  const api = useMemo(
    () =>
      createClient({
        getKey: () => keyStore.get(),
        onUnauthorized: () => {
          if (statusRef.current === 'signed-in') {
            signOut('Your API key is no longer accepted. Sign in again.');
          }
        },
      }),
    [signOut],
  );

  useEffect(() => {
    let cancelled = false;
    const key = keyStore.get();
    (async () => {
      if (key) {
        // The page's own requests go first; the key check only fills in who is signed in.
        await new Promise((r) => setTimeout(r, 800));
        if (cancelled) return;
        try {
          const who = await api.get<AuthCheck>('/api/v1/auth/check', { key });
          if (!cancelled) {
            setAuth((a) => (a.status === 'signed-out' ? a : { status: 'signed-in', authType: who.auth_type ?? 'api-key', actor: who.actor, admin: who.admin }));
          }
        } catch (e) {
          if (cancelled) return;
          if (e instanceof ApiError && e.isUnauthorized) {
            keyStore.clear();
            queryClient.clear();
            setAuth({ status: 'signed-out', authType: 'api-key', notice: 'The saved API key is no longer accepted. Sign in again.' });
          } else if (!(e instanceof ApiError) || e.status === 0) {
            setAuth({ status: 'unreachable' });
          }
        }
        return;
      }
      let info: AuthInfo;
      try {
        info = await api.get<AuthInfo>('/api/v1/auth/info', { key: null });
      } catch {
        if (!cancelled) setAuth({ status: 'unreachable' });
        return;
      }
      if (cancelled) return;
      if (info.auth_type === 'none') setAuth({ status: 'open', authType: 'none', actor: 'anonymous', admin: true });
      else setAuth({ status: 'signed-out', authType: info.auth_type });
    })();
    return () => {
      cancelled = true;
    };
  }, [api, attempt, queryClient]);

  const signIn = useCallback(
    async (key: string, remember: boolean) => {
      const trimmed = key.trim();
      if (!trimmed) throw new ApiError(400, 'validation_error', 'Enter an API key.');
      const who = await api.get<AuthCheck>('/api/v1/auth/check', { key: trimmed });
      keyStore.set(trimmed, remember);
      queryClient.clear();
      setAuth((a) => ({ status: 'signed-in', authType: a.authType, actor: who.actor, admin: who.admin }));
    },
    [api, queryClient],
  );

  const value = useMemo(
    () => ({ api, auth, signIn, signOut, retry: () => setAttempt((n) => n + 1) }),
    [api, auth, signIn, signOut],
  );
  return <ApiCtx.Provider value={value}>{children}</ApiCtx.Provider>;
}

function useCtx(): Ctx {
  const c = useContext(ApiCtx);
  if (!c) throw new Error('ApiProvider missing');
  return c;
}

export function useApi(): ApiClient {
  return useCtx().api;
}

export function useAuth() {
  const { auth, signIn, signOut, retry } = useCtx();
  return { ...auth, signIn, signOut, retry };
}

export interface ServerDoc {
  routes: Set<string>;
  schemas: Record<string, JsonSchema>;
}

/** The server's OpenAPI document (route table and resource schemas), fetched once per session. */
export function useServerDoc() {
  const api = useApi();
  return useQuery({
    queryKey: ['openapi'],
    queryFn: async (): Promise<ServerDoc> => {
      const doc = await api.get<{ components?: { schemas?: Record<string, JsonSchema> } }>('/api/v1/openapi.json', { key: null });
      return { routes: routesOf(doc), schemas: doc?.components?.schemas ?? {} };
    },
    staleTime: 5 * 60_000,
    gcTime: Infinity,
  });
}

/** true/false once known, undefined while the route table loads. */
export function useCapability(name: Optional): boolean | undefined {
  const doc = useServerDoc();
  const [method, path] = OPTIONAL[name];
  if (doc.isError) return true; // Unknown: try, and handle a 404 where it happens.
  return hasRoute(doc.data?.routes, method, path);
}
