import { useEffect, useState } from 'react';
import { Badge } from '../components/Badge';
import { ErrorBox } from '../components/ErrorBox';
import { ago, errorText, formatMs, formatNumber } from '../format';
import { useResource } from '../hooks';
import { parseMetrics, traffic, type Scrape, type Traffic } from '../metrics';
import { Link } from '../router';
import { useApi, useSession } from '../session';

/** How often the dashboard samples the gateway's /metrics. */
const SAMPLE_MS = 5000;

function Stat({ label, value, hint, id }: { label: string; value: string; hint?: string; id: string }) {
  return (
    <div className="stat" data-testid={`stat-${id}`}>
      <div className="stat-value">{value}</div>
      <div className="stat-label">{label}</div>
      {hint && <div className="muted small">{hint}</div>}
    </div>
  );
}

/** Samples /metrics every SAMPLE_MS and answers the traffic between the last two samples. */
function useTraffic(enabled: boolean): { traffic: Traffic | null; error: unknown } {
  const api = useApi();
  const [state, setState] = useState<{ last: Scrape | null; traffic: Traffic | null }>({ last: null, traffic: null });
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    const sample = async () => {
      try {
        const scrape = parseMetrics(await api.metrics());
        if (stopped) return;
        setError(null);
        setState((s) => ({ last: scrape, traffic: s.last ? traffic(s.last, scrape) : s.traffic }));
      } catch (e) {
        if (!stopped) setError(e);
      }
    };
    void sample();
    const timer = window.setInterval(sample, SAMPLE_MS);
    return () => {
      stopped = true;
      window.clearInterval(timer);
    };
  }, [api, enabled]);
  return { traffic: state.traffic, error };
}

function TrafficPanel({ enabled }: { enabled: boolean }) {
  const { traffic: t, error } = useTraffic(enabled);
  if (!enabled) return <p className="muted">Traffic figures come from /metrics, which needs an admin credential.</p>;
  return (
    <>
      <ErrorBox error={error} />
      {!t ? (
        <p className="muted" data-testid="traffic-pending">
          Measuring: the figures are the difference of two samples of /metrics, {SAMPLE_MS / 1000} s apart…
        </p>
      ) : (
        <>
          <div className="stats">
            <Stat id="qps" label="requests / s" value={formatNumber(t.qps, 2)} hint={`over the last ${formatNumber(t.seconds, 1)} s`} />
            <Stat id="latency-mean" label="mean latency" value={formatMs(t.mean)} />
            <Stat id="latency-p50" label="p50 latency" value={formatMs(t.p50)} />
            <Stat id="latency-p95" label="p95 latency" value={formatMs(t.p95)} />
            <Stat id="latency-p99" label="p99 latency" value={formatMs(t.p99)} />
            <Stat id="errors" label="5xx answers" value={`${formatNumber(t.errorRate * 100, 1)} %`} />
          </div>
          {t.routes.length > 0 && (
            <table className="compact" aria-label="Traffic by route">
              <thead>
                <tr>
                  <th>protocol</th>
                  <th>route</th>
                  <th className="num">requests / s</th>
                  <th className="num">mean latency</th>
                </tr>
              </thead>
              <tbody>
                {t.routes.slice(0, 10).map((r) => (
                  <tr key={`${r.protocol} ${r.route}`}>
                    <td>{r.protocol}</td>
                    <td>
                      <code>{r.route}</code>
                    </td>
                    <td className="num">{formatNumber(r.qps, 2)}</td>
                    <td className="num">{formatMs(r.mean)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <p className="muted small">Counts every request the gateway served, the console's own included.</p>
        </>
      )}
    </>
  );
}

/** Cluster health, size, traffic and open alerts. */
export function Dashboard() {
  const api = useApi();
  const { isAdmin } = useSession();
  const health = useResource(() => api.health(), [api], SAMPLE_MS);
  const stats = useResource(() => (isAdmin ? api.stats() : Promise.resolve(null)), [api, isAdmin], SAMPLE_MS);
  const alerts = useResource(() => (isAdmin ? api.alerts(false) : Promise.resolve(null)), [api, isAdmin], SAMPLE_MS);
  const s = stats.data;

  return (
    <section>
      <h2>Dashboard</h2>
      <div className="card">
        <h3>Health</h3>
        {health.error ? (
          <p>
            <Badge value="unhealthy" tone="bad" /> {errorText(health.error)}
          </p>
        ) : health.data ? (
          <p data-testid="health">
            <Badge value={health.data.status} tone={health.data.status === 'ok' ? 'good' : 'bad'} /> placement leader{' '}
            <code>{health.data.placement_leader ?? '—'}</code>, term {health.data.placement_term ?? '—'}
          </p>
        ) : (
          <p className="muted">Loading…</p>
        )}
      </div>

      {isAdmin ? (
        <div className="card">
          <h3>Cluster</h3>
          <ErrorBox error={stats.error} />
          {s && (
            <div className="stats">
              <Stat id="workers" label="workers up" value={`${s.workers_up} / ${s.workers}`} />
              <Stat id="collections" label="collections" value={formatNumber(s.collections)} />
              <Stat id="shards" label="shards with a leader" value={`${s.shards_with_leader} / ${s.shards}`} />
              <Stat id="replicas" label="replicas" value={formatNumber(s.replicas)} />
              <Stat id="points" label="points" value={formatNumber(s.points)} hint="as the shard leaders last reported" />
              <Stat id="epoch" label="routing epoch" value={formatNumber(s.epoch)} />
            </div>
          )}
        </div>
      ) : (
        <p className="muted">The cluster view, traffic and alerts need an admin credential.</p>
      )}

      <div className="card">
        <h3>Traffic</h3>
        <TrafficPanel enabled={isAdmin} />
      </div>

      {isAdmin && (
        <div className="card">
          <h3>
            Open alerts <span className="count" data-testid="open-alerts">{alerts.data?.length ?? '…'}</span>
          </h3>
          <ErrorBox error={alerts.error} />
          {alerts.data?.length === 0 && <p className="muted">No open alerts.</p>}
          {alerts.data && alerts.data.length > 0 && (
            <ul className="plain">
              {alerts.data.slice(0, 5).map((a) => (
                <li key={a.id}>
                  <Badge value={a.kind} tone="bad" /> {a.message} <span className="muted small">{ago(a.raised_at_ms)}</span>
                </li>
              ))}
            </ul>
          )}
          <Link to="/alerts">All alerts →</Link>
        </div>
      )}
    </section>
  );
}
