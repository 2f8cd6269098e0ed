import { useState } from 'react';
import type { ReactNode } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { useApi, useCapability, useServerDoc } from '../api/context';
import { apiPath, describeError, rowsOf } from '../api/client';
import type { Plugin, Row } from '../api/types';
import { useQueryState } from '../lib/router';
import { formSchema } from '../lib/resources';
import type { FormSchemaOptions } from '../lib/resources';
import { initialValues, usableSchema } from '../lib/schema';
import type { FormValues, JsonSchema } from '../lib/schema';
import { plural } from '../lib/format';
import { DataTable } from './DataTable';
import type { Column } from './DataTable';
import { ResourceForm } from './ResourceForm';
import { Chips, EmptyState, ErrorBox, Modal, PageHeader, Pagination, Panel, Spinner, useToast } from './ui';

/** Plugins the server reports (`GET /api/v1/plugins`); empty when that endpoint does not exist. */
export function usePlugins() {
  const api = useApi();
  const available = useCapability('plugins');
  const q = useQuery({
    queryKey: ['plugins'],
    queryFn: async ({ signal }) => rowsOf<Plugin>(await api.get('/api/v1/plugins', { signal })),
    enabled: available === true,
    staleTime: 60_000,
  });
  return { available, query: q, plugins: q.data ?? [] };
}

/** The plugin of `kind` ("issuer", "target") implementing connector `type`, if any. */
export function pluginFor(plugins: Plugin[], kind: string, type: string | undefined): Plugin | undefined {
  if (!type) return undefined;
  return plugins.find((p) => p.id === type && (!p.kind || p.kind.toLowerCase().includes(kind)));
}

export interface ResourcePageProps {
  resource: string;
  schemaName: string;
  title: string;
  subtitle?: ReactNode;
  singular: string;
  columns: Column<Row>[];
  form: FormSchemaOptions;
  emptyText: ReactNode;
  defaultSort?: string;
  /** A chip filter over one enum field (e.g. type). */
  chipFilter?: { field: string; options: readonly string[] };
  /** Connector kind whose plugin `config_schema` drives the `config` field. */
  pluginKind?: 'issuer' | 'target';
  rowActions?: (row: Row) => ReactNode;
  canDelete?: (row: Row) => boolean;
  deleteNote?: string;
  headerExtra?: ReactNode;
}

export function ResourcePage(props: ResourcePageProps) {
  const { resource, schemaName, columns, form, pluginKind } = props;
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const doc = useServerDoc();
  const { plugins } = usePlugins();
  const [q, setQ] = useQueryState();
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const perPage = Number(q.get('per_page') ?? 50) || 50;
  const sort = q.get('sort') ?? props.defaultSort ?? 'name';
  const chip = props.chipFilter;
  const chipValues = chip ? (q.get(chip.field) ?? '').split(',').filter(Boolean) : [];
  const filters = chip ? { [chip.field]: chipValues } : {};
  const list = useQuery({
    queryKey: [resource, 'list', { page, perPage, sort, ...filters }],
    queryFn: ({ signal }) => api.list<Row>(resource, { page, perPage, sort, filters }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
  const [editing, setEditing] = useState<Row | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Row | null>(null);

  const base = doc.data?.schemas[schemaName];
  function schemaFor(type: string | undefined, mode: 'create' | 'update'): JsonSchema {
    const overrides: Record<string, JsonSchema> = { ...(form.overrides ?? {}) };
    if (pluginKind) {
      const plugin = pluginFor(plugins, pluginKind, type);
      const pluginSchema = usableSchema(plugin?.config_schema);
      overrides.config = pluginSchema
        ? { ...pluginSchema, type: 'object', title: `${plugin?.id} configuration`, description: `Fields from the ${plugin?.id} plugin's schema.` }
        : { type: 'object', title: 'Configuration (JSON)', description: type ? `No plugin schema for "${type}": enter the connector's settings as JSON.` : 'Connector settings as JSON.' };
    }
    return formSchema(base, { ...form, includeId: mode === 'create' && form.includeId !== false, overrides });
  }

  const rows = list.data?.data ?? [];
  const mode = editing === 'new' ? 'create' : 'update';
  const editingRow = editing !== 'new' ? editing : null;
  const initialType = editingRow ? String(editingRow.type ?? '') : undefined;
  const [formType, setFormType] = useState<string | undefined>(undefined);
  const schema = editing ? schemaFor(formType ?? initialType, mode) : null;

  function openForm(target: Row | 'new') {
    setFormType(target === 'new' ? undefined : String(target.type ?? '') || undefined);
    setEditing(target);
  }

  async function save(payload: Record<string, unknown>) {
    if (editing === 'new') {
      const created = await api.post<Row>(`/api/v1/${resource}`, payload);
      toast(`Created ${props.singular} ${String(created.name ?? created.id)}.`);
    } else if (editing) {
      await api.put(apiPath(resource, editing.id), payload);
      toast(`Saved ${props.singular} ${String(editing.name ?? editing.id)}.`);
    }
    setEditing(null);
    await qc.invalidateQueries({ queryKey: [resource] });
  }

  return (
    <>
      <PageHeader
        title={props.title}
        subtitle={props.subtitle ?? (list.data ? plural(list.data.total, props.singular) : undefined)}
        actions={
          <button className="btn primary" onClick={() => openForm('new')} disabled={!base}>
            New {props.singular}
          </button>
        }
      />
      {props.headerExtra}
      <Panel>
        {chip && (
          <div className="filters">
            <Chips label={chip.field} options={chip.options} selected={chipValues} onChange={(s) => setQ({ [chip.field]: s.join(',') || null, page: null })} />
          </div>
        )}
        {doc.isError && <ErrorBox error={doc.error} what="the API description" />}
        {list.isError && <ErrorBox error={list.error} what={props.title.toLowerCase()} />}
        {list.isLoading && <Spinner />}
        {list.data && rows.length === 0 && (
          <EmptyState
            title={chipValues.length ? `No ${props.title.toLowerCase()} match this filter` : `No ${props.title.toLowerCase()} yet`}
            action={
              !chipValues.length && (
                <button className="btn primary" onClick={() => openForm('new')} disabled={!base}>
                  Create the first {props.singular}
                </button>
              )
            }
          >
            {!chipValues.length && props.emptyText}
          </EmptyState>
        )}
        {rows.length > 0 && (
          <>
            <DataTable<Row>
              caption={props.title}
              rows={rows}
              rowKey={(r) => r.id}
              sort={sort}
              onSort={(s) => setQ({ sort: s })}
              columns={[
                ...columns,
                {
                  key: '_actions',
                  header: '',
                  className: 'right',
                  render: (r) => (
                    <span className="row-actions">
                      {props.rowActions?.(r)}
                      <button className="btn small" onClick={() => openForm(r)}>
                        Edit
                      </button>
                      {(props.canDelete?.(r) ?? true) && (
                        <button className="btn small ghost" onClick={() => setDeleting(r)}>
                          Delete
                        </button>
                      )}
                    </span>
                  ),
                },
              ]}
            />
            <Pagination page={page} perPage={perPage} total={list.data?.total ?? 0} onPage={(p) => setQ({ page: p === 1 ? null : p })} onPerPage={(n) => setQ({ per_page: n, page: null })} />
          </>
        )}
      </Panel>
      {editing && schema && (
        <Modal title={editing === 'new' ? `New ${props.singular}` : `Edit ${String(editing.name ?? editing.id)}`} onClose={() => setEditing(null)} wide>
          <ResourceForm
            key={editing === 'new' ? 'new' : editing.id}
            idPrefix={resource}
            schema={schema}
            initial={initialValues(schema, editingRow ?? undefined)}
            mode={mode}
            submitLabel={editing === 'new' ? `Create ${props.singular}` : 'Save'}
            onCancel={() => setEditing(null)}
            onSubmit={save}
            onValuesChange={(next: FormValues, prev: FormValues) => {
              if (pluginKind && next.type !== prev.type) {
                const t = typeof next.type === 'string' ? next.type : undefined;
                setFormType(t);
                const cfg = schemaFor(t, mode).properties?.config;
                return cfg ? { ...next, config: initialValues({ type: 'object', properties: { config: cfg } }).config } : next;
              }
              return next;
            }}
          />
        </Modal>
      )}
      {deleting && (
        <Modal
          title={`Delete ${String(deleting.name ?? deleting.id)}?`}
          onClose={() => setDeleting(null)}
          footer={
            <>
              <button className="btn" onClick={() => setDeleting(null)}>
                Cancel
              </button>
              <button
                className="btn danger"
                onClick={async () => {
                  try {
                    await api.del(apiPath(resource, deleting.id));
                    toast(`Deleted ${String(deleting.name ?? deleting.id)}.`);
                    setDeleting(null);
                    await qc.invalidateQueries({ queryKey: [resource] });
                  } catch (e) {
                    toast(describeError(e), 'bad');
                  }
                }}
              >
                Delete
              </button>
            </>
          }
        >
          {props.deleteNote ?? 'This cannot be undone. The deletion is recorded in the audit log.'}
        </Modal>
      )}
    </>
  );
}
