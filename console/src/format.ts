// Display helpers.

export function formatTime(ms: number | null | undefined): string {
  if (!ms) return '—';
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

/** "12 s ago", "3 min ago", … */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function formatNumber(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function formatMs(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const ms = seconds * 1000;
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A shard's hash range as hex ("0 means 2^64" at the end). */
export function hashRange(start: number | bigint, end: number | bigint): string {
  const hex = (n: number | bigint) => `0x${BigInt(n).toString(16).padStart(16, '0')}`;
  return `${hex(start)} – ${BigInt(end) === 0n ? '2^64' : hex(end)}`;
}
