import { useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError, describeError } from '../api/client';
import { toPayload } from '../lib/schema';
import type { FormValues, JsonSchema } from '../lib/schema';
import { SchemaFields } from './SchemaForm';

/** A schema-driven form: validates locally, submits, and pins server field errors to fields. */
export function ResourceForm({
  schema,
  initial,
  mode,
  submitLabel,
  onSubmit,
  onCancel,
  onValuesChange,
  idPrefix,
  extra,
}: {
  schema: JsonSchema;
  initial: FormValues;
  mode: 'create' | 'update';
  submitLabel: string;
  onSubmit: (payload: Record<string, unknown>) => Promise<void>;
  onCancel?: () => void;
  /** Lets the owner react to edits (e.g. swap a config schema when `type` changes). */
  onValuesChange?: (next: FormValues, prev: FormValues) => FormValues;
  idPrefix?: string;
  extra?: ReactNode;
}) {
  const [values, setValues] = useState<FormValues>(initial);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    const { value, errors: local } = toPayload(schema, values, mode);
    setErrors(local);
    setFormError(null);
    if (Object.keys(local).length > 0) {
      setFormError('Fix the highlighted fields.');
      return;
    }
    setBusy(true);
    try {
      await onSubmit(value);
    } catch (err) {
      if (err instanceof ApiError && err.field) {
        const msg = err.message.startsWith(`${err.field}:`) ? err.message.slice(err.field.length + 1).trim() : err.message;
        setErrors({ [err.field]: msg });
      }
      setFormError(describeError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="form" onSubmit={submit} noValidate>
      <SchemaFields
        schema={schema}
        values={values}
        errors={errors}
        idPrefix={idPrefix}
        onChange={(next) => setValues(onValuesChange ? onValuesChange(next, values) : next)}
      />
      {extra}
      {formError && (
        <div className="alert tone-bad" role="alert">
          {formError}
        </div>
      )}
      <div className="form-actions">
        {onCancel && (
          <button type="button" className="btn" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
        )}
        <button type="submit" className="btn primary" disabled={busy}>
          {busy ? 'Saving…' : submitLabel}
        </button>
      </div>
    </form>
  );
}
