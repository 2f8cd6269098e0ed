import { Suspense, lazy, useEffect, useState } from 'react';
import type { ComponentType } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useApi, useAuth } from './api/context';
import { Link, matchRoute, useLocation } from './lib/router';
import { Logo, Spinner } from './components/ui';
import { SignIn } from './pages/SignIn';
import { NotFound } from './pages/NotFound';
import { Overview } from './pages/Overview';
import { Certificates } from './pages/Certificates';
import { CertificateDetail } from './pages/CertificateDetail';
import { Jobs } from './pages/Jobs';

// The daily pages are in the main bundle (no chunk waterfall on a first visit); the others
// load on demand and are prefetched while the browser is idle.
const loaders = {
  CertificateNew: () => import('./pages/CertificateNew'),
  JobDetail: () => import('./pages/JobDetail'),
  Agents: () => import('./pages/Agents'),
  AgentDetail: () => import('./pages/AgentDetail'),
  Targets: () => import('./pages/Targets'),
  Issuers: () => import('./pages/Issuers'),
  Profiles: () => import('./pages/Profiles'),
  Policies: () => import('./pages/Policies'),
  RenewalPolicies: () => import('./pages/RenewalPolicies'),
  Teams: () => import('./pages/Teams'),
  Owners: () => import('./pages/Owners'),
  Notifications: () => import('./pages/Notifications'),
  Digest: () => import('./pages/Digest'),
  Audit: () => import('./pages/Audit'),
  Plugins: () => import('./pages/Plugins'),
};
type PageName = keyof typeof loaders;

function page(name: PageName): Page {
  return lazy(async () => {
    const mod = (await loaders[name]()) as unknown as Record<string, Page>;
    return { default: mod[name] };
  });
}

const CertificateNew = page('CertificateNew');
const JobDetail = page('JobDetail');
const Agents = page('Agents');
const AgentDetail = page('AgentDetail');
const Targets = page('Targets');
const Issuers = page('Issuers');
const Profiles = page('Profiles');
const Policies = page('Policies');
const RenewalPolicies = page('RenewalPolicies');
const Teams = page('Teams');
const Owners = page('Owners');
const Notifications = page('Notifications');
const Digest = page('Digest');
const Audit = page('Audit');
const Plugins = page('Plugins');

function prefetchPages() {
  const run = () => Object.values(loaders).forEach((load) => void load().catch(() => {}));
  if ('requestIdleCallback' in window) window.requestIdleCallback(run, { timeout: 3000 });
  else setTimeout(run, 1500);
}

type Page = ComponentType<{ params: Record<string, string> }>;

const ROUTES: [string, Page][] = [
  ['/', Overview],
  ['/certificates', Certificates],
  ['/certificates/new', CertificateNew],
  ['/certificates/:id', CertificateDetail],
  ['/jobs', Jobs],
  ['/jobs/:id', JobDetail],
  ['/agents', Agents],
  ['/agents/:id', AgentDetail],
  ['/targets', Targets],
  ['/issuers', Issuers],
  ['/profiles', Profiles],
  ['/policies', Policies],
  ['/renewal-policies', RenewalPolicies],
  ['/teams', Teams],
  ['/owners', Owners],
  ['/notifications', Notifications],
  ['/digest', Digest],
  ['/audit', Audit],
  ['/plugins', Plugins],
];

const NAV: { section?: string; items: [string, string][] }[] = [
  {
    items: [
      ['/', 'Overview'],
      ['/certificates', 'Certificates'],
      ['/jobs', 'Jobs'],
      ['/agents', 'Agents'],
      ['/targets', 'Targets'],
      ['/notifications', 'Notifications'],
      ['/digest', 'Digest'],
      ['/audit', 'Audit log'],
    ],
  },
  {
    section: 'Configuration',
    items: [
      ['/issuers', 'Issuers'],
      ['/profiles', 'Profiles'],
      ['/policies', 'Policies'],
      ['/renewal-policies', 'Renewal policies'],
      ['/teams', 'Teams'],
      ['/owners', 'Owners'],
      ['/plugins', 'Plugins'],
    ],
  },
];

function resolve(path: string): [Page, Record<string, string>] {
  const clean = path.length > 1 ? path.replace(/\/+$/, '') : path;
  for (const [pattern, page] of ROUTES) {
    const params = matchRoute(pattern, clean);
    if (params) return [page, params];
  }
  return [NotFound, {}];
}

function isActive(href: string, path: string): boolean {
  return href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`);
}

function UnreadBadge() {
  const api = useApi();
  // Not needed for the first paint: leave the first second to the page's own requests.
  const [ready, setReady] = useState(false);
  useEffect(() => {
    const t = setTimeout(() => setReady(true), 1000);
    return () => clearTimeout(t);
  }, []);
  const q = useQuery({
    queryKey: ['notifications', 'unread-count'],
    queryFn: ({ signal }) => api.count('notifications', { read: false }, signal),
    refetchInterval: 30_000,
    enabled: ready,
  });
  if (!q.data) return null;
  return (
    <span className="nav-count" aria-label={`${q.data} unread`}>
      {q.data > 99 ? '99+' : q.data}
    </span>
  );
}

function ThemeToggle() {
  const [theme, setTheme] = useState(() => document.documentElement.dataset.theme ?? 'dark');
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    try {
      localStorage.setItem('certctl.theme', theme);
    } catch {
      // Storage blocked: the choice lasts for this page only.
    }
  }, [theme]);
  return (
    <button className="btn ghost small" onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')} aria-label="Toggle colour theme">
      {theme === 'dark' ? '☀ Light' : '☾ Dark'}
    </button>
  );
}

function Shell() {
  const { path } = useLocation();
  const auth = useAuth();
  const [menuOpen, setMenuOpen] = useState(false);
  const [Page, params] = resolve(path);
  useEffect(() => setMenuOpen(false), [path]);
  useEffect(() => {
    const t = setTimeout(prefetchPages, 500);
    return () => clearTimeout(t);
  }, []);
  useEffect(() => {
    const item = NAV.flatMap((s) => s.items).find(([href]) => isActive(href, path) && href !== '/');
    document.title = item ? `${item[1]} · certctl` : 'certctl';
  }, [path]);
  return (
    <div className={`shell ${menuOpen ? 'menu-open' : ''}`}>
      <aside className="sidebar">
        <div className="brand">
          <Logo />
          <span>certctl</span>
        </div>
        <nav aria-label="Main">
          {NAV.map((group, i) => (
            <div key={i} className="nav-group">
              {group.section && <div className="nav-section">{group.section}</div>}
              {group.items.map(([href, label]) => (
                <Link key={href} to={href} className={`nav-link ${isActive(href, path) ? 'active' : ''}`} aria-current={isActive(href, path) ? 'page' : undefined}>
                  {label}
                  {href === '/notifications' && <UnreadBadge />}
                </Link>
              ))}
            </div>
          ))}
        </nav>
      </aside>
      <div className="main">
        <header className="topbar">
          <button className="btn ghost small menu-btn" onClick={() => setMenuOpen((o) => !o)} aria-label="Menu" aria-expanded={menuOpen}>
            ☰
          </button>
          <div className="spacer" />
          <ThemeToggle />
          {auth.status === 'signed-in' ? (
            <>
              <span className="who" title={auth.admin ? 'Signed in with an admin API key' : 'Signed in with an API key'}>
                {auth.actor ?? 'signed in'}
                {auth.admin && auth.actor !== 'admin' ? ' (admin)' : ''}
              </span>
              <button className="btn small" onClick={() => auth.signOut()}>
                Sign out
              </button>
            </>
          ) : (
            <span className="who muted" title="CERTCTL_AUTH_TYPE=none">
              authentication off
            </span>
          )}
        </header>
        <main className="content" id="content">
          <Suspense fallback={<Spinner />}>
            <Page key={path} params={params} />
          </Suspense>
        </main>
      </div>
      {menuOpen && <div className="scrim" onClick={() => setMenuOpen(false)} />}
    </div>
  );
}

export function App() {
  const auth = useAuth();
  if (auth.status === 'loading') {
    return (
      <div className="center-screen">
        <Spinner label="Connecting to certctl…" />
      </div>
    );
  }
  if (auth.status === 'unreachable') {
    return (
      <div className="center-screen">
        <div className="card narrow">
          <h1>certctl</h1>
          <p>The certctl server does not answer. Check that it is running, then try again.</p>
          <button className="btn primary" onClick={auth.retry}>
            Try again
          </button>
        </div>
      </div>
    );
  }
  if (auth.status === 'signed-out') return <SignIn />;
  return <Shell />;
}
