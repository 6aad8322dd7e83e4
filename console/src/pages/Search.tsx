import { useEffect, useState, type FormEvent } from 'react';
import { ErrorBox } from '../components/ErrorBox';
import { JsonEditor, JsonView, parseJson } from '../components/Json';
import { formatNumber } from '../format';
import { useAction, useResource } from '../hooks';
import { navigate } from '../router';
import { useApi } from '../session';
import type { Consistency, Hit, PointId, SearchReply, SearchRequest } from '../types';

type Mode = 'vector' | 'point';

/** A vector typed as a JSON array or as numbers separated by commas or spaces. */
export function parseVector(text: string): number[] {
  const t = text.trim();
  const parts = t.startsWith('[') ? (JSON.parse(t) as unknown[]) : t.split(/[\s,]+/).filter(Boolean);
  const v = parts.map(Number);
  if (v.length === 0 || v.some((x) => !Number.isFinite(x))) throw new Error('the vector must be a list of numbers');
  return v;
}

/** A point id as typed: digits are a numeric id, anything else a string id. */
export function parsePointId(text: string): PointId {
  const t = text.trim();
  if (!t) throw new Error('give a point id');
  return /^\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : t;
}

interface Result {
  collection: string;
  reply: SearchReply;
  queryText?: string;
}

function FeedbackButtons({ result, hit, position }: { result: Result; hit: Hit; position: number }) {
  const api = useApi();
  const action = useAction();
  const [sent, setSent] = useState<number | null>(null);
  const send = (relevance: number) =>
    action.run(async () => {
      await api.feedback({
        collection: result.collection,
        query_id: result.reply.query_id,
        point_id: hit.id,
        relevance,
        position,
        query_text: result.queryText,
      });
      setSent(relevance);
    });
  return (
    <div className="feedback">
      <button type="button" title="Send relevance +1" className={sent === 1 ? 'chosen' : undefined} disabled={action.busy} onClick={() => void send(1)}>
        Relevant
      </button>
      <button type="button" title="Send relevance −1" className={sent === -1 ? 'chosen' : undefined} disabled={action.busy} onClick={() => void send(-1)}>
        Not relevant
      </button>
      {sent !== null && (
        <span className="muted small" role="status">
          feedback recorded
        </span>
      )}
      <ErrorBox error={action.error} />
    </div>
  );
}

function Results({ result }: { result: Result }) {
  const { reply } = result;
  const reranked = reply.hits.some((h) => h.rerank_score !== undefined);
  return (
    <div className="card" data-testid="results">
      <h3>
        {reply.hits.length} hit(s) <span className="muted small">query id <code>{reply.query_id}</code></span>
      </h3>
      {reply.partial && <p className="error">Partial answer: shards {reply.missing_shards.join(', ')} missed the deadline.</p>}
      {reply.rerank_skipped && <p className="notice">Not reranked: {reply.rerank_skipped}</p>}
      {reply.reranked && <p className="muted small">In the reranker's order.</p>}
      {reply.hits.length > 0 && (
        <table aria-label="Hits">
          <thead>
            <tr>
              <th className="num">#</th>
              <th>id</th>
              <th className="num">score</th>
              {reranked && <th className="num">rerank score</th>}
              <th>payload</th>
              <th>feedback</th>
            </tr>
          </thead>
          <tbody>
            {reply.hits.map((h, i) => (
              <tr key={`${String(h.id)}-${i}`} data-testid="hit">
                <td className="num">{i + 1}</td>
                <td>
                  <code data-testid="hit-id">{JSON.stringify(h.id)}</code>
                </td>
                <td className="num" data-testid="hit-score">
                  {formatNumber(h.score, 4)}
                </td>
                {reranked && (
                  <td className="num" title={h.explanation}>
                    {formatNumber(h.rerank_score, 4)}
                  </td>
                )}
                <td>
                  <JsonView value={h.payload} className="small" />
                </td>
                <td>
                  <FeedbackButtons result={result} hit={h} position={i} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The search playground: by vector or by a point's vector, a filter, top-k; hits with feedback. */
export function Search({ initialCollection }: { initialCollection: string }) {
  const api = useApi();
  const collections = useResource(() => api.collections(), [api]);
  const [collection, setCollection] = useState(initialCollection);
  const [mode, setMode] = useState<Mode>('vector');
  const [vector, setVector] = useState('');
  const [pointId, setPointId] = useState('');
  const [filter, setFilter] = useState('');
  const [topK, setTopK] = useState('10');
  const [ef, setEf] = useState('');
  const [consistency, setConsistency] = useState<Consistency>('leader');
  const [rerank, setRerank] = useState('');
  const [queryText, setQueryText] = useState('');
  const [result, setResult] = useState<Result | null>(null);
  const action = useAction();

  // Default to the first collection; keep the choice in the URL.
  useEffect(() => {
    const names = collections.data?.map((c) => c.name) ?? [];
    if (!collection && names.length > 0) setCollection(names[0]);
  }, [collections.data, collection]);
  useEffect(() => {
    if (collection) navigate(`/search?collection=${encodeURIComponent(collection)}`, true);
  }, [collection]);

  const dimension = collections.data?.find((c) => c.name === collection)?.dimension;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const f = parseJson(filter);
      if (f.error) throw new Error(`the filter is not JSON: ${f.error}`);
      const v = mode === 'vector' ? parseVector(vector) : (await api.point(collection, parsePointId(pointId))).vector;
      if (!v) throw new Error('the point has no vector');
      const request: SearchRequest = {
        vector: v,
        top_k: Number(topK) || 10,
        filter: f.value,
        ef: ef.trim() ? Number(ef) : undefined,
        with_payload: true,
        consistency,
        rerank: rerank ? { strategy: rerank, query_text: queryText.trim() || undefined } : undefined,
      };
      const reply = await api.search(collection, request);
      setResult({ collection, reply, queryText: queryText.trim() || undefined });
    });
  };

  return (
    <section>
      <h2>Search</h2>
      <form className="card form-grid" onSubmit={submit} aria-label="Search">
        <label className="field">
          Collection
          <select name="collection" value={collection} onChange={(e) => setCollection(e.target.value)} required>
            {!collection && <option value="">—</option>}
            {collections.data?.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name} ({c.dimension}, {c.distance})
              </option>
            ))}
          </select>
        </label>
        <fieldset className="field">
          <legend>Query by</legend>
          <label className="check">
            <input type="radio" name="mode" checked={mode === 'vector'} onChange={() => setMode('vector')} /> vector
          </label>
          <label className="check">
            <input type="radio" name="mode" checked={mode === 'point'} onChange={() => setMode('point')} /> point id
          </label>
        </fieldset>
        <label className="field">
          Top k
          <input name="top_k" type="number" min={1} max={10000} value={topK} onChange={(e) => setTopK(e.target.value)} />
        </label>
        {mode === 'vector' ? (
          <label className="field wide">
            Vector {dimension !== undefined && <span className="muted small">({dimension} numbers)</span>}
            <textarea name="vector" className="code" rows={3} value={vector} onChange={(e) => setVector(e.target.value)} placeholder="[0.1, 0.2, 0.3, 0.4]" required spellCheck={false} />
          </label>
        ) : (
          <label className="field wide">
            Point id <span className="muted small">(searches with that point's vector; digits are a numeric id)</span>
            <input name="point_id" value={pointId} onChange={(e) => setPointId(e.target.value)} required />
          </label>
        )}
        <div className="wide">
          <JsonEditor
            label="Filter (JSON, optional)"
            value={filter}
            onChange={setFilter}
            rows={4}
            placeholder='{"must": [{"key": "city", "match": {"value": "London"}}]}'
            hint="The filter language of the API: must / should / must_not of key conditions (match, range, …), has_id."
          />
        </div>
        <label className="field">
          ef <span className="muted small">(empty: the collection's default)</span>
          <input name="ef" type="number" min={1} max={65536} value={ef} onChange={(e) => setEf(e.target.value)} />
        </label>
        <label className="field">
          Consistency
          <select name="consistency" value={consistency} onChange={(e) => setConsistency(e.target.value as Consistency)}>
            <option value="leader">leader</option>
            <option value="linearizable">linearizable</option>
            <option value="any">any</option>
          </select>
        </label>
        <label className="field">
          Rerank
          <select name="rerank" value={rerank} onChange={(e) => setRerank(e.target.value)}>
            <option value="">collection default</option>
            <option value="none">none</option>
            <option value="rule">rule</option>
            <option value="mmr">mmr</option>
            <option value="feedback">feedback</option>
            <option value="cross_encoder">cross_encoder</option>
          </select>
        </label>
        <label className="field">
          Query text <span className="muted small">(for reranks and feedback)</span>
          <input name="query_text" value={queryText} onChange={(e) => setQueryText(e.target.value)} />
        </label>
        <div className="wide">
          <ErrorBox error={collections.error ?? action.error} />
          <button type="submit" className="primary" disabled={action.busy || !collection}>
            {action.busy ? 'Searching…' : 'Search'}
          </button>
        </div>
      </form>
      {result && <Results key={result.reply.query_id} result={result} />}
    </section>
  );
}
