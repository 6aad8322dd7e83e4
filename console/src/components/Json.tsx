import { useId } from 'react';
import type { Json } from '../types';

/** JSON, pretty-printed. */
export function JsonView({ value, className }: { value: unknown; className?: string }) {
  if (value === undefined) return <span className="muted">—</span>;
  return <pre className={`json ${className ?? ''}`}>{JSON.stringify(value, null, 2)}</pre>;
}

/** Parses JSON text; empty text is `undefined` (nothing given). */
export function parseJson(text: string): { value?: Json; error?: string } {
  if (!text.trim()) return {};
  try {
    return { value: JSON.parse(text) as Json };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

interface EditorProps {
  label: string;
  value: string;
  onChange: (text: string) => void;
  placeholder?: string;
  rows?: number;
  hint?: string;
}

/** A JSON text area that says, as one types, whether the text is valid JSON. */
export function JsonEditor({ label, value, onChange, placeholder, rows = 5, hint }: EditorProps) {
  const id = useId();
  const { error } = parseJson(value);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea
        id={id}
        className={`code ${error ? 'invalid' : ''}`}
        rows={rows}
        value={value}
        placeholder={placeholder}
        spellCheck={false}
        onChange={(e) => onChange(e.target.value)}
      />
      {error ? <div className="field-error">Invalid JSON: {error}</div> : hint && <div className="muted small">{hint}</div>}
    </div>
  );
}
