import { useState } from 'react';
import { Badge } from '../components/Badge';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorBox } from '../components/ErrorBox';
import { ago, formatTime } from '../format';
import { useResource } from '../hooks';
import { useApi } from '../session';
import type { PlacementCollection, Worker } from '../types';

interface Placement {
  replicas: number;
  leading: number;
}

/** How many replicas each worker holds and how many shards it leads. */
function placementByWorker(collections: PlacementCollection[]): Map<number, Placement> {
  const m = new Map<number, Placement>();
  const at = (id: number) => m.get(id) ?? m.set(id, { replicas: 0, leading: 0 }).get(id)!;
  for (const c of collections) {
    for (const s of c.shards) {
      for (const r of s.replicas) at(r).replicas += 1;
      if (s.leader) at(s.leader).leading += 1;
    }
  }
  return m;
}

function RemoveButton({ worker, onDone }: { worker: Worker; onDone: () => void }) {
  const api = useApi();
  const [force, setForce] = useState(false);
  return (
    <ConfirmButton
      label="Remove"
      danger
      title={`Remove worker ${worker.id}?`}
      message={
        <p>
          The cluster forgets worker <strong>{worker.id}</strong> (<code>{worker.address}</code>) for good and replaces its
          replicas elsewhere. Its id is never reused. The server refuses when a shard would be left without a live
          replica, unless forced.
        </p>
      }
      extra={
        <label className="check">
          <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> Force (shards whose only
          live replica is on this worker stop being served)
        </label>
      }
      onConfirm={async () => {
        await api.removeWorker(worker.id, force);
        onDone();
      }}
    />
  );
}

/** The cluster's workers: state, zone, replicas; drain and remove. */
export function Workers() {
  const api = useApi();
  const workers = useResource(async () => {
    const [list, placement] = await Promise.all([api.workers(), api.placement()]);
    return { list, placement: placementByWorker(placement.collections) };
  }, [api], 5000);
  const data = workers.data;

  return (
    <section>
      <div className="page-head">
        <h2>Workers</h2>
        <button type="button" onClick={workers.reload} disabled={workers.loading}>
          Refresh
        </button>
      </div>
      <ErrorBox error={workers.error} />
      {data && (
        <table aria-label="Workers">
          <thead>
            <tr>
              <th>id</th>
              <th>address</th>
              <th>zone</th>
              <th>state</th>
              <th>since</th>
              <th className="num">replicas</th>
              <th className="num">leading</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.list.map((w) => {
              const p = data.placement.get(w.id) ?? { replicas: 0, leading: 0 };
              return (
                <tr key={w.id} data-testid={`worker-${w.id}`}>
                  <td>{w.id}</td>
                  <td>
                    <code>{w.address}</code>
                  </td>
                  <td>{w.zone || <span className="muted">—</span>}</td>
                  <td>
                    <Badge value={w.state} />
                  </td>
                  <td title={formatTime(w.state_since_ms)}>{ago(w.state_since_ms)}</td>
                  <td className="num">{p.replicas}</td>
                  <td className="num">{p.leading}</td>
                  <td className="row-actions">
                    <ConfirmButton
                      label="Drain"
                      title={`Drain worker ${w.id}?`}
                      message={
                        <p>
                          Worker <strong>{w.id}</strong> keeps serving while the scheduler moves its {p.replicas} replica(s)
                          to other workers. The API has no way to undo a drain.
                        </p>
                      }
                      disabled={w.state === 'draining'}
                      onConfirm={async () => {
                        await api.drainWorker(w.id);
                        workers.reload();
                      }}
                    />
                    <RemoveButton worker={w} onDone={workers.reload} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {data?.list.length === 0 && <p className="muted">No workers have registered.</p>}
    </section>
  );
}
