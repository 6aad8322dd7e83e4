// The gateway's Prometheus metrics (`GET /metrics`): parsing the text format, and the
// traffic between two samples — requests per second and latency from the
// `vectron_requests_total` counter and the `vectron_request_seconds` histogram.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  /** When it was taken (ms, the browser's clock). */
  at: number;
  samples: Sample[];
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function number(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

export function parseMetrics(text: string, at = Date.now()): Scrape {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = unescape(l[2]);
    samples.push({ name: m[1], labels, value: number(m[3]) });
  }
  return { at, samples };
}

export interface RouteTraffic {
  protocol: string;
  route: string;
  qps: number;
  /** Mean latency over the interval, seconds (null: no requests). */
  mean: number | null;
}

export interface Traffic {
  seconds: number;
  qps: number;
  /** Share of requests answered with a 5xx status. */
  errorRate: number;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  routes: RouteTraffic[];
}

const REQUESTS = 'vectron_requests_total';
const LATENCY = 'vectron_request_seconds';

function byKey(samples: Sample[], name: string, key: (s: Sample) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of samples) if (s.name === name) m.set(key(s), (m.get(key(s)) ?? 0) + s.value);
  return m;
}

function increase(a: Scrape, b: Scrape, name: string, key: (s: Sample) => string): Map<string, number> {
  const before = byKey(a.samples, name, key);
  const after = byKey(b.samples, name, key);
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const prev = before.get(k);
    // A series new since `a` started at zero; a counter that dropped was reset (a restart).
    out.set(k, prev === undefined || v < prev ? v : v - prev);
  }
  return out;
}

/** The `q` quantile of a histogram's bucket increases (upper bound → count, cumulative), as histogram_quantile does. */
export function quantile(q: number, buckets: Array<[number, number]>): number | null {
  const sorted = [...buckets].sort((x, y) => x[0] - y[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound; // beyond the last finite bucket
      const inBucket = count - lowerCount;
      return inBucket <= 0 ? bound : lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / inBucket;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

const routeKey = (s: Sample) => `${s.labels.protocol ?? ''} ${s.labels.route ?? ''}`;

/** The traffic between scrapes `a` and `b` (b later). */
export function traffic(a: Scrape, b: Scrape): Traffic {
  const seconds = Math.max((b.at - a.at) / 1000, 0.001);
  const requests = increase(a, b, REQUESTS, (s) => `${routeKey(s)} ${s.labels.status ?? ''}`);
  let total = 0;
  let errors = 0;
  const perRoute = new Map<string, number>();
  for (const [k, n] of requests) {
    total += n;
    const status = k.slice(k.lastIndexOf(' ') + 1);
    if (status.startsWith('5')) errors += n;
    const route = k.slice(0, k.lastIndexOf(' '));
    perRoute.set(route, (perRoute.get(route) ?? 0) + n);
  }
  const sums = increase(a, b, `${LATENCY}_sum`, routeKey);
  const counts = increase(a, b, `${LATENCY}_count`, routeKey);
  const buckets = increase(a, b, `${LATENCY}_bucket`, (s) => s.labels.le ?? '');
  const bucketList: Array<[number, number]> = [...buckets].map(([le, n]) => [number(le), n]);
  const allSum = [...sums.values()].reduce((x, y) => x + y, 0);
  const allCount = [...counts.values()].reduce((x, y) => x + y, 0);
  const routes: RouteTraffic[] = [...perRoute]
    .filter(([, n]) => n > 0)
    .map(([k, n]) => {
      const [protocol, ...route] = k.split(' ');
      const c = counts.get(k) ?? 0;
      return { protocol, route: route.join(' '), qps: n / seconds, mean: c > 0 ? (sums.get(k) ?? 0) / c : null };
    })
    .sort((x, y) => y.qps - x.qps);
  return {
    seconds,
    qps: total / seconds,
    errorRate: total > 0 ? errors / total : 0,
    mean: allCount > 0 ? allSum / allCount : null,
    p50: quantile(0.5, bucketList),
    p95: quantile(0.95, bucketList),
    p99: quantile(0.99, bucketList),
    routes,
  };
}
