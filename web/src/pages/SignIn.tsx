import { useState } from 'react';
import type { FormEvent } from 'react';
import { useAuth } from '../api/context';
import { ApiError, describeError } from '../api/client';
import { Logo } from '../components/ui';

export function SignIn() {
  const auth = useAuth();
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await auth.signIn(key, remember);
    } catch (err) {
      setError(err instanceof ApiError && err.isUnauthorized ? 'That API key was not accepted.' : describeError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="center-screen">
      <form className="card narrow signin" onSubmit={submit} aria-labelledby="signin-title">
        <div className="brand big">
          <Logo size={32} />
          <span>certctl</span>
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p className="muted">
          This server uses API keys. Paste one: the admin key printed when the server first started, or the value of
          <code> CERTCTL_ADMIN_API_KEY</code>.
        </p>
        {auth.notice && (
          <div className="alert tone-warn" role="status">
            {auth.notice}
          </div>
        )}
        <div className="field">
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="current-password"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            required
            autoFocus
          />
        </div>
        <div className="field checkbox">
          <label htmlFor="remember">
            <input id="remember" type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
            Remember on this device (otherwise the key is forgotten when this tab closes)
          </label>
        </div>
        {error && (
          <div className="alert tone-bad" role="alert">
            {error}
          </div>
        )}
        <button className="btn primary block" type="submit" disabled={busy || key.trim() === ''}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
