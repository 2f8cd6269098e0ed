// Evaluated before anything else in the bundle (first import of main.tsx): when the page
// being opened is the certificates list and a key is stored, its data request starts now, in
// parallel with evaluating React and rendering the shell, instead of after them.
import { API_BASE, listQuery } from './api/client';
import { putEarly } from './api/early';
import { keyStore } from './api/session';
import { certificateListParams } from './lib/certificateList';

try {
  const key = keyStore.get();
  const path = window.location.pathname.replace(/\/+$/, '');
  if (key && path === '/certificates') {
    const params = certificateListParams(new URLSearchParams(window.location.search));
    if (!params.within) {
      const url = `${API_BASE}/certificates?${listQuery(params)}`;
      putEarly(url, fetch(url, { headers: { Accept: 'application/json', Authorization: `Bearer ${key}` } }));
    }
  }
} catch {
  // Storage or URL trouble: the page loads its data the normal way.
}
