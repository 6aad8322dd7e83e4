import { useState, type ReactNode } from 'react';
import { Badge } from '../components/Badge';
import { ErrorBox } from '../components/ErrorBox';
import { JsonView } from '../components/Json';
import { formatNumber, hashRange } from '../format';
import { useAction, useResource } from '../hooks';
import { Link } from '../router';
import { useApi } from '../session';
import type { CollectionConfig, Point } from '../types';

function Config({ c, points }: { c: CollectionConfig; points: number | undefined }) {
  const rows: Array<[string, ReactNode]> = [
    ['dimension', c.dimension],
    ['distance', c.distance],
    ['shards', c.shard_count],
    ['replication factor', c.replication_factor],
    ['HNSW', c.hnsw ? `m ${c.hnsw.m}, ef_construction ${c.hnsw.ef_construction}` : '—'],
    ['payload indexes', c.payload_indexes?.length ? c.payload_indexes.map((x) => `${x.key} (${x.kind})`).join(', ') : '—'],
    ['default rerank', c.default_rerank ? <JsonView value={c.default_rerank} /> : '—'],
    ['points', <span data-testid="points-count">{formatNumber(points)}</span>],
  ];
  return (
    <dl className="props">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

const PAGE = 20;

/** The collection's points, a page at a time (`points/scroll`). */
function PointBrowser({ name }: { name: string }) {
  const api = useApi();
  const [pages, setPages] = useState<{ points: Point[]; next: string | null } | null>(null);
  const action = useAction();
  const load = (cursor?: string) =>
    action.run(async () => {
      const r = await api.scroll(name, PAGE, cursor);
      setPages((p) => ({ points: cursor && p ? [...p.points, ...r.points] : r.points, next: r.next_cursor }));
    });
  return (
    <div className="card">
      <h3>Points</h3>
      <ErrorBox error={action.error} />
      {!pages ? (
        <button type="button" onClick={() => void load()} disabled={action.busy}>
          Show points
        </button>
      ) : (
        <>
          <table className="compact" aria-label="Points">
            <thead>
              <tr>
                <th>id</th>
                <th>payload</th>
              </tr>
            </thead>
            <tbody>
              {pages.points.map((p) => (
                <tr key={String(p.id)}>
                  <td>
                    <code>{JSON.stringify(p.id)}</code>
                  </td>
                  <td>
                    <JsonView value={p.payload} className="small" />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {pages.points.length === 0 && <p className="muted">No points.</p>}
          {pages.next && (
            <button type="button" onClick={() => void load(pages.next!)} disabled={action.busy}>
              More
            </button>
          )}
        </>
      )}
    </div>
  );
}

/** One collection: its settings, where its shards live (replicas, leaders), feedback, points. */
export function CollectionDetail({ name }: { name: string }) {
  const api = useApi();
  const status = useResource(() => api.collectionStatus(name), [api, name], 5000);
  const info = useResource(() => api.collection(name), [api, name], 5000);
  const feedback = useResource(() => api.feedbackStats(name), [api, name]);
  const s = status.data;

  return (
    <section>
      <div className="page-head">
        <h2>
          <Link to="/collections">Collections</Link> / {name}
        </h2>
        <Link className="button" to={`/search?collection=${encodeURIComponent(name)}`}>
          Search
        </Link>
      </div>
      <ErrorBox error={status.error} />
      {s && (
        <>
          <div className="card">
            <h3>Settings</h3>
            <Config c={s.collection} points={info.data?.points_count} />
          </div>
          <div className="card">
            <h3>
              Shards <span className="muted small">routing epoch {s.epoch}</span>
            </h3>
            <table aria-label="Shards">
              <thead>
                <tr>
                  <th>shard</th>
                  <th>hash range</th>
                  <th className="num">points</th>
                  <th>leader</th>
                  <th>replicas</th>
                </tr>
              </thead>
              <tbody>
                {s.shards.map((sh) => {
                  const leader = sh.replicas.find((r) => r.leader);
                  return (
                    <tr key={sh.shard_id} data-testid={`shard-${sh.shard_id}`}>
                      <td>{sh.shard_id}</td>
                      <td>
                        <code className="small">{hashRange(sh.range_start, sh.range_end)}</code>
                      </td>
                      <td className="num">{formatNumber(sh.points_count)}</td>
                      <td data-testid="leader">
                        {leader ? `worker ${leader.worker_id}` : <Badge value="no leader" tone="bad" />}
                      </td>
                      <td>
                        <ul className="plain">
                          {sh.replicas.map((r) => (
                            <li key={r.worker_id}>
                              worker {r.worker_id} <code className="small">{r.address}</code> <Badge value={r.state} />
                              {r.leader && <Badge value="leader" />}
                            </li>
                          ))}
                        </ul>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <p className="muted small">Shard point counts come with the leaders' heartbeats and may lag behind writes.</p>
          </div>
        </>
      )}
      <div className="card">
        <h3>Feedback</h3>
        <ErrorBox error={feedback.error} />
        {feedback.data && (
          <p data-testid="feedback-stats">
            {formatNumber(feedback.data.count)} judgement(s) on {formatNumber(feedback.data.points)} point(s) over{' '}
            {formatNumber(feedback.data.queries)} quer{feedback.data.queries === 1 ? 'y' : 'ies'}: {feedback.data.positive}{' '}
            positive, {feedback.data.negative} negative, mean relevance {formatNumber(feedback.data.mean_relevance, 2)}.{' '}
            <button type="button" onClick={feedback.reload}>
              Refresh
            </button>
          </p>
        )}
      </div>
      <PointBrowser name={name} />
    </section>
  );
}
