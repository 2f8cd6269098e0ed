// Forms generated from JSON Schema (plugin `config_schema`s and the dashboard's own resource
// forms). Editing state is kept as strings/booleans; `toPayload` validates and converts.

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  enum?: readonly unknown[];
  default?: unknown;
  format?: string;
  properties?: Record<string, JsonSchema>;
  required?: readonly string[];
  items?: JsonSchema;
  readOnly?: boolean;
  writeOnly?: boolean;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  examples?: readonly unknown[];
  /** Dashboard extension: placeholder text. */
  'x-placeholder'?: string;
  /** Dashboard extension: options from another resource ("issuers", "agents", …). */
  'x-ref'?: string;
}

export type FieldKind = 'text' | 'password' | 'textarea' | 'number' | 'integer' | 'boolean' | 'select' | 'list' | 'json' | 'object';

export type FormValue = string | boolean | FormValues;
export interface FormValues {
  [key: string]: FormValue;
}

function typeOf(s: JsonSchema): string | undefined {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== 'null');
  return s.type;
}

export function fieldKind(s: JsonSchema): FieldKind {
  if (s.enum && s.enum.length > 0) return 'select';
  const t = typeOf(s);
  if (t === 'boolean') return 'boolean';
  if (t === 'integer') return 'integer';
  if (t === 'number') return 'number';
  if (t === 'array') {
    const it = s.items ? typeOf(s.items) : 'string';
    return it === 'string' || it === undefined || it === 'integer' || it === 'number' ? 'list' : 'json';
  }
  if (t === 'object') return s.properties && Object.keys(s.properties).length > 0 ? 'object' : 'json';
  if (s.writeOnly || s.format === 'password') return 'password';
  if (s.format === 'textarea' || s.format === 'pem' || (s.maxLength ?? 0) > 200) return 'textarea';
  return 'text';
}

/** Editable (not readOnly) properties in document order. */
export function editableFields(schema: JsonSchema): [string, JsonSchema][] {
  return Object.entries(schema.properties ?? {}).filter(([, s]) => !s.readOnly);
}

function toFormValue(s: JsonSchema, v: unknown): FormValue {
  const kind = fieldKind(s);
  if (kind === 'object') return initialValues(s, (v ?? undefined) as Record<string, unknown> | undefined);
  if (kind === 'boolean') return v === undefined || v === null ? false : Boolean(v);
  if (v === undefined || v === null) return '';
  if (kind === 'list') return Array.isArray(v) ? v.map(String).join(', ') : String(v);
  if (kind === 'json') return JSON.stringify(v, null, 2);
  return String(v);
}

/** Form state for `schema`, from an existing object (edit) or the schema's defaults (create). */
export function initialValues(schema: JsonSchema, existing?: Record<string, unknown>): FormValues {
  const out: FormValues = {};
  for (const [name, s] of editableFields(schema)) {
    const v = existing && name in existing ? existing[name] : s.default;
    out[name] = toFormValue(s, v);
  }
  return out;
}

export interface PayloadResult {
  value: Record<string, unknown>;
  /** Field path (`config.url`) → message. */
  errors: Record<string, string>;
}

/**
 * Converts form state to a request body. `mode: 'create'` leaves empty optional fields out;
 * `mode: 'update'` sends them as null (so clearing a field clears it on the server).
 */
export function toPayload(schema: JsonSchema, values: FormValues, mode: 'create' | 'update' = 'create', prefix = ''): PayloadResult {
  const value: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  const required = new Set(schema.required ?? []);
  for (const [name, s] of editableFields(schema)) {
    const path = prefix + name;
    const raw = values[name];
    const kind = fieldKind(s);
    const empty = raw === undefined || (typeof raw === 'string' && raw.trim() === '');
    if (kind === 'object') {
      const nested = toPayload(s, (raw as FormValues) ?? {}, mode, `${path}.`);
      Object.assign(errors, nested.errors);
      value[name] = nested.value;
      continue;
    }
    if (kind === 'boolean') {
      value[name] = raw === true;
      continue;
    }
    if (empty) {
      if (required.has(name)) errors[path] = 'required';
      else if (mode === 'update') value[name] = kind === 'list' ? [] : null;
      continue;
    }
    const text = String(raw).trim();
    switch (kind) {
      case 'integer':
      case 'number': {
        const n = Number(text);
        if (!Number.isFinite(n) || (kind === 'integer' && !Number.isInteger(n))) {
          errors[path] = kind === 'integer' ? 'must be a whole number' : 'must be a number';
        } else if (s.minimum !== undefined && n < s.minimum) {
          errors[path] = `must be at least ${s.minimum}`;
        } else if (s.maximum !== undefined && n > s.maximum) {
          errors[path] = `must be at most ${s.maximum}`;
        } else {
          value[name] = n;
        }
        break;
      }
      case 'select': {
        const match = (s.enum ?? []).find((e) => String(e) === text);
        if (match === undefined) errors[path] = `must be one of ${(s.enum ?? []).join(', ')}`;
        else value[name] = match;
        break;
      }
      case 'list': {
        const items = text
          .split(/[\n,]/)
          .map((x) => x.trim())
          .filter((x) => x !== '');
        const it = s.items ? typeOf(s.items) : 'string';
        if (it === 'integer' || it === 'number') {
          const nums = items.map(Number);
          if (nums.some((n) => !Number.isFinite(n))) errors[path] = 'must be a list of numbers';
          else value[name] = nums;
        } else {
          value[name] = items;
        }
        break;
      }
      case 'json': {
        try {
          const parsed: unknown = JSON.parse(text);
          const t = typeOf(s);
          if (t === 'object' && (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))) {
            errors[path] = 'must be a JSON object';
          } else if (t === 'array' && !Array.isArray(parsed)) {
            errors[path] = 'must be a JSON array';
          } else {
            value[name] = parsed;
          }
        } catch {
          errors[path] = 'is not valid JSON';
        }
        break;
      }
      default: {
        if (s.minLength !== undefined && text.length < s.minLength) {
          errors[path] = `must be at least ${s.minLength} characters`;
        } else if (s.pattern && !new RegExp(s.pattern).test(text)) {
          errors[path] = `must match ${s.pattern}`;
        } else {
          value[name] = kind === 'password' || kind === 'textarea' ? String(raw) : text;
        }
      }
    }
  }
  return { value, errors };
}

/** A usable schema from a plugin's `config_schema` (object with properties), else null. */
export function usableSchema(schema: unknown): JsonSchema | null {
  if (!schema || typeof schema !== 'object') return null;
  const s = schema as JsonSchema;
  if (!s.properties || typeof s.properties !== 'object' || Object.keys(s.properties).length === 0) return null;
  return s;
}
