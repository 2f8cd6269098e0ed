import { useQuery } from '@tanstack/react-query';
import { useApi } from '../api/context';
import { editableFields, fieldKind } from '../lib/schema';
import type { FormValue, FormValues, JsonSchema } from '../lib/schema';
import { humanize } from '../lib/format';

/** Options for a select that points at another resource (`x-ref`). */
export function useRefOptions(resource: string | undefined) {
  const api = useApi();
  return useQuery({
    queryKey: [resource, 'options'],
    queryFn: ({ signal }) => api.list<{ id: string; name?: string }>(resource as string, { perPage: 500, fields: ['id', 'name'], sort: 'name' }, signal),
    enabled: !!resource,
    staleTime: 30_000,
  });
}

function RefSelect({ id, resource, value, onChange, required }: { id: string; resource: string; value: string; onChange: (v: string) => void; required: boolean }) {
  const q = useRefOptions(resource);
  const rows = q.data?.data ?? [];
  const known = rows.some((r) => r.id === value);
  return (
    <select id={id} value={value} onChange={(e) => onChange(e.target.value)} required={required}>
      <option value="">{q.isLoading ? 'Loading…' : '— none —'}</option>
      {value && !known && <option value={value}>{value}</option>}
      {rows.map((r) => (
        <option key={r.id} value={r.id}>
          {r.name ? `${r.name} (${r.id})` : r.id}
        </option>
      ))}
    </select>
  );
}

function label(name: string, s: JsonSchema): string {
  return s.title ?? humanize(name);
}

export function SchemaFields({
  schema,
  values,
  onChange,
  errors,
  prefix = '',
  idPrefix = 'f',
}: {
  schema: JsonSchema;
  values: FormValues;
  onChange: (next: FormValues) => void;
  errors: Record<string, string>;
  prefix?: string;
  idPrefix?: string;
}) {
  const required = new Set(schema.required ?? []);
  const set = (name: string, v: FormValue) => onChange({ ...values, [name]: v });
  return (
    <>
      {editableFields(schema).map(([name, s]) => {
        const path = prefix + name;
        const id = `${idPrefix}-${path.replace(/\./g, '-')}`;
        const kind = fieldKind(s);
        const err = errors[path];
        const req = required.has(name);
        const raw = values[name];
        const text = typeof raw === 'string' ? raw : '';
        const describedBy = s.description ? `${id}-help` : undefined;
        if (kind === 'object') {
          return (
            <fieldset key={name} className="subform">
              <legend>{label(name, s)}</legend>
              {s.description && <p className="help">{s.description}</p>}
              <SchemaFields
                schema={s}
                values={(raw as FormValues) ?? {}}
                onChange={(v) => set(name, v)}
                errors={errors}
                prefix={`${path}.`}
                idPrefix={idPrefix}
              />
            </fieldset>
          );
        }
        if (kind === 'boolean') {
          return (
            <div key={name} className="field checkbox">
              <label htmlFor={id}>
                <input id={id} name={path} type="checkbox" checked={raw === true} onChange={(e) => set(name, e.target.checked)} />
                {label(name, s)}
              </label>
              {s.description && <p className="help">{s.description}</p>}
            </div>
          );
        }
        let input;
        const common = {
          id,
          name: path,
          'aria-invalid': err ? true : undefined,
          'aria-describedby': describedBy,
          required: req,
        };
        if (s['x-ref']) {
          input = <RefSelect id={id} resource={s['x-ref']} value={text} onChange={(v) => set(name, v)} required={req} />;
        } else if (kind === 'select') {
          input = (
            <select {...common} value={text} onChange={(e) => set(name, e.target.value)}>
              {!req && <option value="">— none —</option>}
              {req && text === '' && <option value="">Choose…</option>}
              {(s.enum ?? []).map((o) => (
                <option key={String(o)} value={String(o)}>
                  {String(o)}
                </option>
              ))}
            </select>
          );
        } else if (kind === 'json' || kind === 'textarea' || kind === 'list') {
          input = (
            <textarea
              {...common}
              rows={kind === 'json' ? 5 : kind === 'list' ? 2 : 6}
              className={kind === 'json' || kind === 'textarea' ? 'mono' : undefined}
              value={text}
              placeholder={s['x-placeholder'] ?? (kind === 'json' ? '{}' : kind === 'list' ? 'comma or newline separated' : undefined)}
              onChange={(e) => set(name, e.target.value)}
            />
          );
        } else {
          input = (
            <input
              {...common}
              type={kind === 'password' ? 'password' : kind === 'integer' || kind === 'number' ? 'number' : s.format === 'email' ? 'email' : s.format === 'uri' ? 'url' : 'text'}
              step={kind === 'integer' ? 1 : kind === 'number' ? 'any' : undefined}
              min={s.minimum}
              max={s.maximum}
              autoComplete={kind === 'password' ? 'new-password' : 'off'}
              value={text}
              placeholder={s['x-placeholder'] ?? (s.examples?.[0] !== undefined ? String(s.examples[0]) : undefined)}
              onChange={(e) => set(name, e.target.value)}
            />
          );
        }
        return (
          <div key={name} className={`field ${err ? 'has-error' : ''}`}>
            <label htmlFor={id}>
              {label(name, s)}
              {req && <span className="req" aria-hidden="true"> *</span>}
            </label>
            {input}
            {s.description && (
              <p className="help" id={describedBy}>
                {s.description}
              </p>
            )}
            {err && <p className="error-text">{`${label(name, s)} ${err}`}</p>}
          </div>
        );
      })}
    </>
  );
}
