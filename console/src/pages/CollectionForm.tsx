import { useState, type FormEvent } from 'react';
import { ErrorBox } from '../components/ErrorBox';
import { JsonEditor, parseJson } from '../components/Json';
import { useAction } from '../hooks';
import { useApi } from '../session';
import type { CollectionConfig, Distance, Json, PayloadIndex, PayloadIndexKind } from '../types';

const DISTANCES: Distance[] = ['cosine', 'euclid', 'dot'];
const INDEX_KINDS: PayloadIndexKind[] = ['keyword', 'integer', 'float', 'bool'];
const RERANKS = ['', 'rule', 'mmr', 'cross_encoder', 'feedback'];

/** A whole number from a field, or undefined when it is empty (the server's default). */
function whole(text: string): number | undefined {
  return text.trim() === '' ? undefined : Number(text);
}

/** The form creating a collection, with every setting `POST /v1/collections` takes. */
export function CollectionForm({ onCreated }: { onCreated: (name: string) => void }) {
  const api = useApi();
  const [name, setName] = useState('');
  const [dimension, setDimension] = useState('');
  const [distance, setDistance] = useState<Distance>('cosine');
  const [shards, setShards] = useState('1');
  const [replication, setReplication] = useState('1');
  const [m, setM] = useState('');
  const [efConstruction, setEfConstruction] = useState('');
  const [indexes, setIndexes] = useState<PayloadIndex[]>([]);
  const [rerank, setRerank] = useState('');
  const [rerankParams, setRerankParams] = useState('');
  const action = useAction();

  const setIndex = (i: number, change: Partial<PayloadIndex>) =>
    setIndexes((list) => list.map((x, j) => (j === i ? { ...x, ...change } : x)));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const params = parseJson(rerankParams);
      if (params.error) throw new Error(`the rerank parameters are not JSON: ${params.error}`);
      const config: CollectionConfig = {
        name: name.trim(),
        dimension: Number(dimension),
        distance,
        shard_count: whole(shards),
        replication_factor: whole(replication),
        payload_indexes: indexes.filter((x) => x.key.trim()).map((x) => ({ ...x, key: x.key.trim() })),
      };
      if (m.trim() || efConstruction.trim()) config.hnsw = { m: whole(m), ef_construction: whole(efConstruction) };
      if (rerank) config.default_rerank = { strategy: rerank, params: params.value as Record<string, Json> | undefined };
      const created = await api.createCollection(config);
      onCreated(created.collection.name);
      setName('');
      setDimension('');
      setIndexes([]);
    });
  };

  return (
    <form className="card form-grid" onSubmit={submit} aria-label="New collection">
      <h3>New collection</h3>
      <label className="field">
        Name
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} required pattern="[a-zA-Z0-9_\-]{1,64}" title="1-64 letters, digits, _ or -" />
      </label>
      <label className="field">
        Dimension
        <input name="dimension" type="number" min={1} max={65536} value={dimension} onChange={(e) => setDimension(e.target.value)} required />
      </label>
      <label className="field">
        Distance
        <select name="distance" value={distance} onChange={(e) => setDistance(e.target.value as Distance)}>
          {DISTANCES.map((d) => (
            <option key={d}>{d}</option>
          ))}
        </select>
      </label>
      <label className="field">
        Shards
        <input name="shard_count" type="number" min={1} max={256} value={shards} onChange={(e) => setShards(e.target.value)} />
      </label>
      <label className="field">
        Replication factor
        <input name="replication_factor" type="number" min={1} max={7} value={replication} onChange={(e) => setReplication(e.target.value)} />
      </label>
      <label className="field">
        HNSW m <span className="muted small">(default 16)</span>
        <input name="hnsw_m" type="number" min={2} max={128} value={m} onChange={(e) => setM(e.target.value)} />
      </label>
      <label className="field">
        HNSW ef_construction <span className="muted small">(default 200)</span>
        <input name="hnsw_ef_construction" type="number" min={1} max={4096} value={efConstruction} onChange={(e) => setEfConstruction(e.target.value)} />
      </label>

      <fieldset className="wide">
        <legend>Payload indexes</legend>
        {indexes.map((x, i) => (
          <div className="inline" key={i}>
            <input aria-label={`index ${i + 1} key`} placeholder="payload key, e.g. city or meta.lang" value={x.key} onChange={(e) => setIndex(i, { key: e.target.value })} />
            <select aria-label={`index ${i + 1} kind`} value={x.kind} onChange={(e) => setIndex(i, { kind: e.target.value as PayloadIndexKind })}>
              {INDEX_KINDS.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
            <button type="button" onClick={() => setIndexes((list) => list.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setIndexes((list) => [...list, { key: '', kind: 'keyword' }])}>
          Add a payload index
        </button>
      </fieldset>

      <fieldset className="wide">
        <legend>Default rerank</legend>
        <label className="field">
          Strategy
          <select name="default_rerank" value={rerank} onChange={(e) => setRerank(e.target.value)}>
            {RERANKS.map((r) => (
              <option key={r} value={r}>
                {r || 'none'}
              </option>
            ))}
          </select>
        </label>
        {rerank && (
          <JsonEditor label="Parameters (JSON object)" value={rerankParams} onChange={setRerankParams} rows={3} placeholder='{"text_fields": ["title", "body"]}' />
        )}
      </fieldset>

      <div className="wide">
        <ErrorBox error={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Creating…' : 'Create collection'}
        </button>
      </div>
    </form>
  );
}
