import type { ReactNode } from 'react';

export interface Column<T> {
  key: string;
  header: ReactNode;
  render: (row: T) => ReactNode;
  /** Server-side sort field; the header becomes a sort toggle. */
  sortField?: string;
  className?: string;
}

/** `-expires_at` → {field: 'expires_at', desc: true}. */
export function parseSort(sort: string | undefined): { field: string; desc: boolean } | null {
  if (!sort) return null;
  return sort.startsWith('-') ? { field: sort.slice(1), desc: true } : { field: sort, desc: false };
}

export function DataTable<T>({
  columns,
  rows,
  rowKey,
  sort,
  onSort,
  selected,
  onSelect,
  onRowClick,
  busy,
  caption,
}: {
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  sort?: string;
  onSort?: (sort: string) => void;
  selected?: ReadonlySet<string>;
  onSelect?: (next: Set<string>) => void;
  onRowClick?: (row: T) => void;
  busy?: boolean;
  caption?: string;
}) {
  const current = parseSort(sort);
  const keys = rows.map(rowKey);
  const allOn = selected !== undefined && keys.length > 0 && keys.every((k) => selected.has(k));
  const someOn = selected !== undefined && keys.some((k) => selected.has(k));
  return (
    <div className={`table-wrap ${busy ? 'busy' : ''}`}>
      <table className="table">
        {caption && <caption className="sr-only">{caption}</caption>}
        <thead>
          <tr>
            {onSelect && selected && (
              <th className="select">
                <input
                  type="checkbox"
                  aria-label="Select all on this page"
                  checked={allOn}
                  ref={(el) => {
                    if (el) el.indeterminate = someOn && !allOn;
                  }}
                  onChange={() => {
                    const next = new Set(selected);
                    for (const k of keys) {
                      if (allOn) next.delete(k);
                      else next.add(k);
                    }
                    onSelect(next);
                  }}
                />
              </th>
            )}
            {columns.map((c) => {
              const active = current && c.sortField === current.field;
              return (
                <th
                  key={c.key}
                  className={c.className}
                  aria-sort={active ? (current.desc ? 'descending' : 'ascending') : undefined}
                >
                  {c.sortField && onSort ? (
                    <button
                      type="button"
                      className={`sort ${active ? 'active' : ''}`}
                      onClick={() => onSort(active && !current.desc ? `-${c.sortField}` : (c.sortField as string))}
                    >
                      {c.header}
                      <span className="arrow" aria-hidden="true">
                        {active ? (current.desc ? '▼' : '▲') : '↕'}
                      </span>
                    </button>
                  ) : (
                    c.header
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const k = rowKey(row);
            return (
              <tr
                key={k}
                data-row={k}
                className={`${onRowClick ? 'clickable' : ''} ${selected?.has(k) ? 'selected' : ''}`}
                onClick={
                  onRowClick
                    ? (e) => {
                        const el = e.target as HTMLElement;
                        if (el.closest('a, button, input, select, label')) return;
                        onRowClick(row);
                      }
                    : undefined
                }
              >
                {onSelect && selected && (
                  <td className="select">
                    <input
                      type="checkbox"
                      aria-label={`Select ${k}`}
                      checked={selected.has(k)}
                      onChange={() => {
                        const next = new Set(selected);
                        if (next.has(k)) next.delete(k);
                        else next.add(k);
                        onSelect(next);
                      }}
                    />
                  </td>
                )}
                {columns.map((c) => (
                  <td key={c.key} className={c.className}>
                    {c.render(row)}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
