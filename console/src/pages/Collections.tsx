import { useState } from 'react';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorBox } from '../components/ErrorBox';
import { formatNumber } from '../format';
import { useResource } from '../hooks';
import { Link } from '../router';
import { useApi } from '../session';
import { CollectionForm } from './CollectionForm';

/** The collections with their point counts; create and delete. */
export function Collections() {
  const api = useApi();
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<string | null>(null);
  const list = useResource(async () => {
    const configs = await api.collections();
    // The exact count of each (the cluster view's sizes lag behind: they come with heartbeats).
    const counts = await Promise.all(configs.map((c) => api.collection(c.name).then((i) => i.points_count, () => null)));
    return configs.map((c, i) => ({ config: c, points: counts[i] }));
  }, [api]);

  return (
    <section>
      <div className="page-head">
        <h2>Collections</h2>
        <div>
          <button type="button" onClick={list.reload} disabled={list.loading}>
            Refresh
          </button>{' '}
          <button type="button" className="primary" onClick={() => setCreating((c) => !c)} aria-expanded={creating}>
            {creating ? 'Close the form' : 'New collection'}
          </button>
        </div>
      </div>
      {creating && (
        <CollectionForm
          onCreated={(name) => {
            setCreated(name);
            setCreating(false);
            list.reload();
          }}
        />
      )}
      {created && (
        <p className="notice" role="status">
          Created collection <Link to={`/collections/${encodeURIComponent(created)}`}>{created}</Link>.
        </p>
      )}
      <ErrorBox error={list.error} />
      {list.data && list.data.length === 0 && <p className="muted">No collections yet.</p>}
      {list.data && list.data.length > 0 && (
        <table aria-label="Collections">
          <thead>
            <tr>
              <th>name</th>
              <th className="num">dimension</th>
              <th>distance</th>
              <th className="num">shards</th>
              <th className="num">replication</th>
              <th className="num">points</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data.map(({ config: c, points }) => (
              <tr key={c.name} data-testid={`collection-${c.name}`}>
                <td>
                  <Link to={`/collections/${encodeURIComponent(c.name)}`}>{c.name}</Link>
                </td>
                <td className="num">{c.dimension}</td>
                <td>{c.distance}</td>
                <td className="num">{c.shard_count}</td>
                <td className="num">{c.replication_factor}</td>
                <td className="num" data-testid="points">
                  {formatNumber(points)}
                </td>
                <td className="row-actions">
                  <Link className="button" to={`/search?collection=${encodeURIComponent(c.name)}`}>
                    Search
                  </Link>
                  <ConfirmButton
                    label="Delete"
                    danger
                    title={`Delete collection ${c.name}?`}
                    message={<p>The collection and its {formatNumber(points)} point(s) are deleted for good.</p>}
                    typeToConfirm={c.name}
                    onConfirm={async () => {
                      await api.deleteCollection(c.name);
                      if (created === c.name) setCreated(null);
                      list.reload();
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
