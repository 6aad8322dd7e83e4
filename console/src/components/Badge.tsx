const TONES: Record<string, string> = {
  up: 'good',
  active: 'good',
  ok: 'good',
  leader: 'info',
  draining: 'warn',
  catching_up: 'warn',
  joining: 'warn',
  down: 'bad',
  unreachable: 'bad',
  revoked: 'bad',
  open: 'bad',
  resolved: 'good',
};

/** A state as a coloured label. */
export function Badge({ value, tone }: { value: string; tone?: string }) {
  return <span className={`badge ${tone ?? TONES[value.toLowerCase()] ?? 'neutral'}`}>{value}</span>;
}
