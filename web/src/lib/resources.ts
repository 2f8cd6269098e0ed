// Form schemas for the dashboard's create/edit forms, derived from the server's own OpenAPI
// component schemas (so enums such as target types follow the server), with references to
// other resources turned into selects.
import type { JsonSchema } from './schema';

export const REFS: Record<string, string> = {
  agent_id: 'agents',
  issuer_id: 'issuers',
  owner_id: 'owners',
  team_id: 'teams',
  profile_id: 'profiles',
  renewal_policy_id: 'renewal-policies',
  target_id: 'targets',
  rule_id: 'policies',
};

export interface FormSchemaOptions {
  /** Fields first, in this order; the rest follow alphabetically. */
  order?: readonly string[];
  omit?: readonly string[];
  /** Offer the optional id field (create forms). */
  includeId?: boolean;
  /** Per-field replacements/additions merged over the server's schema. */
  overrides?: Record<string, JsonSchema>;
}

export function formSchema(base: JsonSchema | undefined, opts: FormSchemaOptions = {}): JsonSchema {
  const props: Record<string, JsonSchema> = {};
  const source = base?.properties ?? {};
  const omit = new Set(opts.omit ?? []);
  for (const [name, s] of Object.entries(source)) {
    if (s.readOnly || omit.has(name)) continue;
    if (name === 'id' && !opts.includeId) continue;
    let field: JsonSchema = { ...s };
    if (name === 'id') {
      field = { type: 'string', title: 'ID', description: 'Optional; generated when empty.', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' };
    }
    if (REFS[name]) field = { ...field, 'x-ref': REFS[name] };
    props[name] = field;
  }
  for (const [name, s] of Object.entries(opts.overrides ?? {})) {
    if (omit.has(name)) continue;
    props[name] = { ...(props[name] ?? {}), ...s };
  }
  const order = opts.order ?? [];
  const names = Object.keys(props).sort((a, b) => {
    const ia = order.indexOf(a);
    const ib = order.indexOf(b);
    if (ia !== -1 || ib !== -1) return (ia === -1 ? 1e6 : ia) - (ib === -1 ? 1e6 : ib);
    return a.localeCompare(b);
  });
  const properties: Record<string, JsonSchema> = {};
  for (const n of ['id', ...names.filter((n) => n !== 'id')]) if (props[n]) properties[n] = props[n];
  return {
    type: 'object',
    properties,
    required: (base?.required ?? []).filter((r) => r in properties),
  };
}
