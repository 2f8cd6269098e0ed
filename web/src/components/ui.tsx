import { createContext, useCallback, useContext, useEffect, useId, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError, describeError } from '../api/client';
import { humanize, statusTone } from '../lib/format';
import type { Tone } from '../lib/format';
import { download } from '../lib/csv';

export function Badge({ tone, children, title }: { tone: Tone; children: ReactNode; title?: string }) {
  return (
    <span className={`badge tone-${tone}`} title={title}>
      {children}
    </span>
  );
}

export function StatusBadge({ status }: { status: string | null | undefined }) {
  return (
    <span className={`badge tone-${statusTone(status)}`} data-status={status ?? ''}>
      <span className="dot" aria-hidden="true" />
      {humanize(status)}
    </span>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <header className="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle && <p className="subtitle">{subtitle}</p>}
      </div>
      {actions && <div className="actions">{actions}</div>}
    </header>
  );
}

export function Panel({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`panel ${className ?? ''}`}>
      {(title || actions) && (
        <div className="panel-head">
          {title && <h2>{title}</h2>}
          {actions && <div className="actions">{actions}</div>}
        </div>
      )}
      {children}
    </section>
  );
}

export function EmptyState({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty" role="status">
      <div className="empty-icon" aria-hidden="true">◎</div>
      <h3>{title}</h3>
      {children && <div className="empty-text">{children}</div>}
      {action && <div className="empty-action">{action}</div>}
    </div>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {label}
    </div>
  );
}

/** An error box; a 404 from a missing route reads "not available on this server". */
export function ErrorBox({ error, what }: { error: unknown; what?: string }) {
  const notAvailable = error instanceof ApiError && error.status === 404 && /no route/i.test(error.message);
  if (notAvailable) return <Unavailable what={what} />;
  return (
    <div className="alert tone-bad" role="alert">
      <strong>{what ? `Could not load ${what}.` : 'Something went wrong.'}</strong> {describeError(error)}
    </div>
  );
}

export function Unavailable({ what }: { what?: string }) {
  return (
    <div className="alert tone-muted unavailable" role="note">
      {what ? `${what[0].toUpperCase()}${what.slice(1)}: not` : 'Not'} available on this server.
    </div>
  );
}

export function Pagination({
  page,
  perPage,
  total,
  onPage,
  onPerPage,
}: {
  page: number;
  perPage: number;
  total: number;
  onPage: (p: number) => void;
  onPerPage?: (n: number) => void;
}) {
  const pages = Math.max(1, Math.ceil(total / perPage));
  const from = total === 0 ? 0 : (page - 1) * perPage + 1;
  const to = Math.min(total, page * perPage);
  return (
    <nav className="pagination" aria-label="Pagination">
      <span className="muted" data-testid="page-range">
        {from.toLocaleString('en-US')}–{to.toLocaleString('en-US')} of {total.toLocaleString('en-US')}
      </span>
      {onPerPage && (
        <label className="inline">
          <span className="muted">Rows</span>
          <select value={perPage} onChange={(e) => onPerPage(Number(e.target.value))} aria-label="Rows per page">
            {[25, 50, 100, 200].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      )}
      <button className="btn small" disabled={page <= 1} onClick={() => onPage(1)} aria-label="First page">
        «
      </button>
      <button className="btn small" disabled={page <= 1} onClick={() => onPage(page - 1)} aria-label="Previous page">
        ‹ Prev
      </button>
      <span className="page-no" data-testid="page-number">
        Page {page} of {pages.toLocaleString('en-US')}
      </span>
      <button className="btn small" disabled={page >= pages} onClick={() => onPage(page + 1)} aria-label="Next page">
        Next ›
      </button>
      <button className="btn small" disabled={page >= pages} onClick={() => onPage(pages)} aria-label="Last page">
        »
      </button>
    </nav>
  );
}

export function Modal({
  title,
  onClose,
  children,
  footer,
  wide,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  footer?: ReactNode;
  wide?: boolean;
}) {
  const id = useId();
  const ref = useRef<HTMLDivElement>(null);
  // The latest onClose, without re-running the effect below: a re-render (background refetch)
  // must not move the focus back to the first field while someone is typing.
  const close = useRef(onClose);
  close.current = onClose;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') close.current();
    };
    document.addEventListener('keydown', onKey);
    const first = ref.current?.querySelector<HTMLElement>('input, select, textarea, button:not(.close)');
    first?.focus();
    return () => document.removeEventListener('keydown', onKey);
  }, []);
  return (
    <div className="overlay" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className={`modal ${wide ? 'wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby={id} ref={ref}>
        <div className="modal-head">
          <h2 id={id}>{title}</h2>
          <button className="close" onClick={onClose} aria-label="Close">
            ×
          </button>
        </div>
        <div className="modal-body">{children}</div>
        {footer && <div className="modal-foot">{footer}</div>}
      </div>
    </div>
  );
}

export function KeyValues({ items }: { items: [ReactNode, ReactNode][] }) {
  return (
    <dl className="kv">
      {items.map(([k, v], i) => (
        <div key={i}>
          <dt>{k}</dt>
          <dd>{v === null || v === undefined || v === '' ? <span className="muted">—</span> : v}</dd>
        </div>
      ))}
    </dl>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      className="btn small"
      type="button"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } catch {
          // Clipboard blocked (insecure origin): nothing to do; the text is selectable.
        }
      }}
    >
      {done ? 'Copied' : label}
    </button>
  );
}

export function DownloadButton({ filename, text, label = 'Download', mime = 'application/x-pem-file' }: { filename: string; text: string; label?: string; mime?: string }) {
  return (
    <button className="btn small" type="button" onClick={() => download(filename, text, mime)}>
      {label}
    </button>
  );
}

/** Status chips that toggle a multi-value filter. */
export function Chips({
  options,
  selected,
  onChange,
  label,
}: {
  options: readonly string[];
  selected: readonly string[];
  onChange: (next: string[]) => void;
  label: string;
}) {
  return (
    <div className="chips" role="group" aria-label={label}>
      {options.map((o) => {
        const on = selected.includes(o);
        return (
          <button
            key={o}
            type="button"
            className={`chip tone-${statusTone(o)} ${on ? 'on' : ''}`}
            aria-pressed={on}
            onClick={() => onChange(on ? selected.filter((s) => s !== o) : [...selected, o])}
          >
            {humanize(o)}
          </button>
        );
      })}
      {selected.length > 0 && (
        <button type="button" className="chip clear" onClick={() => onChange([])}>
          Clear
        </button>
      )}
    </div>
  );
}

// ---- toasts ----

interface Toast {
  id: number;
  tone: Tone;
  text: string;
}

const ToastCtx = createContext<(text: string, tone?: Tone) => void>(() => {});

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const next = useRef(1);
  const push = useCallback((text: string, tone: Tone = 'ok') => {
    const id = next.current++;
    setToasts((t) => [...t.slice(-3), { id, tone, text }]);
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), tone === 'bad' ? 8000 : 4000);
  }, []);
  return (
    <ToastCtx.Provider value={push}>
      {children}
      <div className="toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast tone-${t.tone}`} role={t.tone === 'bad' ? 'alert' : 'status'}>
            {t.text}
            <button className="close" aria-label="Dismiss" onClick={() => setToasts((all) => all.filter((x) => x.id !== t.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastCtx.Provider>
  );
}

export function useToast() {
  return useContext(ToastCtx);
}

/** Runs `fn` over `items` with at most `limit` in flight; returns per-item outcomes. */
export async function runLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let i = 0;
  async function worker() {
    while (i < items.length) {
      const n = i++;
      try {
        results[n] = { status: 'fulfilled', value: await fn(items[n]) };
      } catch (reason) {
        results[n] = { status: 'rejected', reason };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The certctl mark (inline, so the shell needs no extra request). */
export function Logo({ size = 24 }: { size?: number }) {
  return (
    <svg viewBox="0 0 32 32" width={size} height={size} aria-hidden="true">
      <rect width="32" height="32" rx="7" fill="#1f6feb" />
      <path d="M16 6l8 3v6c0 5-3.4 9.3-8 11-4.6-1.7-8-6-8-11V9z" fill="none" stroke="#fff" strokeWidth="2.2" strokeLinejoin="round" />
      <path d="M12 16l3 3 5-6" fill="none" stroke="#fff" strokeWidth="2.2" strokeLinecap="round" strokeLinejoin="round" />
    </svg>
  );
}
