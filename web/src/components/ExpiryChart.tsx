// Hand-rolled SVG bar chart of certificates by expiry week.

export interface Bucket {
  key: string;
  label: string;
  count: number;
  tone: 'ok' | 'warn' | 'bad';
  href: string;
  title: string;
}

export function ExpiryChart({ buckets, onSelect }: { buckets: Bucket[]; onSelect: (b: Bucket) => void }) {
  const W = 720;
  const H = 220;
  const pad = { top: 16, right: 8, bottom: 40, left: 36 };
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const nice = niceMax(max);
  const plotW = W - pad.left - pad.right;
  const plotH = H - pad.top - pad.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(6, slot * 0.62);
  const ticks = [0, nice / 2, nice];
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Certificates expiring per week" preserveAspectRatio="xMidYMid meet">
      {ticks.map((t) => {
        const y = pad.top + plotH - (t / nice) * plotH;
        return (
          <g key={t}>
            <line x1={pad.left} x2={W - pad.right} y1={y} y2={y} className="grid" />
            <text x={pad.left - 6} y={y + 4} className="axis" textAnchor="end">
              {Number.isInteger(t) ? t : t.toFixed(1)}
            </text>
          </g>
        );
      })}
      {buckets.map((b, i) => {
        const h = (b.count / nice) * plotH;
        const x = pad.left + i * slot + (slot - barW) / 2;
        const y = pad.top + plotH - h;
        return (
          <g key={b.key} className="bar-group" onClick={() => onSelect(b)} role="link" tabIndex={0} aria-label={b.title}
            onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && onSelect(b)}>
            <title>{b.title}</title>
            <rect x={pad.left + i * slot} y={pad.top} width={slot} height={plotH} className="hit" />
            <rect x={x} y={y} width={barW} height={Math.max(h, b.count > 0 ? 2 : 0)} rx={3} className={`bar tone-${b.tone}`} />
            {b.count > 0 && (
              <text x={x + barW / 2} y={y - 4} className="value" textAnchor="middle">
                {b.count}
              </text>
            )}
            <text x={x + barW / 2} y={H - pad.bottom + 16} className="axis" textAnchor="middle">
              {b.label}
            </text>
          </g>
        );
      })}
      <text x={pad.left} y={H - 6} className="axis">
        weeks from today →
      </text>
    </svg>
  );
}

function niceMax(n: number): number {
  if (n <= 4) return 4;
  const pow = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= n) return m * pow;
  return 10 * pow;
}
