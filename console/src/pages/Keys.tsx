import { useState, type FormEvent } from 'react';
import { Badge } from '../components/Badge';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorBox } from '../components/ErrorBox';
import { formatTime } from '../format';
import { useAction, useResource } from '../hooks';
import { useApi, useSession } from '../session';
import type { CreatedKey, NewKey, Scope } from '../types';

const SCOPES: Scope[] = ['read', 'write', 'admin'];

/** A new key's secret, shown this once (the API never answers it again). */
function Secret({ created, onDone }: { created: CreatedKey; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(created.secret_key);
    setCopied(true);
  };
  return (
    <div className="card secret" role="status" aria-label="New API key">
      <h3>API key {created.key.key_id} created</h3>
      <p>
        <strong>Copy the secret now: it is shown this once.</strong> Clients send it as <code>x-api-key</code>.
      </p>
      <code className="secret-value" data-testid="secret-key">
        {created.secret_key}
      </code>
      <div className="actions">
        <button type="button" onClick={() => void copy().catch(() => setCopied(false))}>
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" className="primary" onClick={onDone}>
          I have saved it
        </button>
      </div>
    </div>
  );
}

function KeyForm({ onCreated }: { onCreated: (k: CreatedKey) => void }) {
  const api = useApi();
  const { isAdmin } = useSession();
  const collections = useResource(() => api.collections(), [api]);
  const [scope, setScope] = useState<Scope>('read');
  const [chosen, setChosen] = useState<string[]>([]);
  const [owner, setOwner] = useState('');
  const [rate, setRate] = useState('');
  const action = useAction();

  const toggle = (name: string) =>
    setChosen((list) => (list.includes(name) ? list.filter((n) => n !== name) : [...list, name]));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const key: NewKey = { scope, collections: chosen };
      if (owner.trim()) key.owner = owner.trim();
      if (rate.trim()) key.rate_limit_per_sec = Number(rate);
      onCreated(await api.createKey(key));
      setChosen([]);
    });
  };

  return (
    <form className="card form-grid" onSubmit={submit} aria-label="New API key">
      <h3>New API key</h3>
      <label className="field">
        Scope
        <select name="scope" value={scope} onChange={(e) => setScope(e.target.value as Scope)}>
          {SCOPES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </label>
      {isAdmin && (
        <>
          <label className="field">
            Owner <span className="muted small">(empty: you)</span>
            <input name="owner" value={owner} onChange={(e) => setOwner(e.target.value)} />
          </label>
          <label className="field">
            Rate limit per second <span className="muted small">(empty: the owner's)</span>
            <input name="rate_limit_per_sec" type="number" min={1} max={100000} value={rate} onChange={(e) => setRate(e.target.value)} />
          </label>
        </>
      )}
      <fieldset className="wide">
        <legend>Collections (none chosen: every collection)</legend>
        <ErrorBox error={collections.error} />
        {collections.data?.length === 0 && <span className="muted">No collections yet.</span>}
        {collections.data?.map((c) => (
          <label className="check" key={c.name}>
            <input type="checkbox" checked={chosen.includes(c.name)} onChange={() => toggle(c.name)} /> {c.name}
          </label>
        ))}
      </fieldset>
      <div className="wide">
        <ErrorBox error={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Creating…' : 'Create key'}
        </button>
      </div>
    </form>
  );
}

/** API keys: list (an admin: everyone's), create (the secret shown once), revoke. */
export function Keys() {
  const api = useApi();
  const { isAdmin } = useSession();
  const [everyone, setEveryone] = useState(false);
  const [showRevoked, setShowRevoked] = useState(false);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const keys = useResource(() => api.listKeys(everyone ? '*' : undefined), [api, everyone]);
  const shown = keys.data?.filter((k) => showRevoked || !k.revoked);

  return (
    <section>
      <h2>API keys</h2>
      {created && <Secret created={created} onDone={() => setCreated(null)} />}
      <KeyForm
        onCreated={(k) => {
          setCreated(k);
          keys.reload();
        }}
      />
      <div className="toolbar">
        {isAdmin && (
          <label className="check">
            <input type="checkbox" checked={everyone} onChange={(e) => setEveryone(e.target.checked)} /> every user's keys
          </label>
        )}
        <label className="check">
          <input type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.target.checked)} /> revoked keys
        </label>
      </div>
      <ErrorBox error={keys.error} />
      {shown && (
        <table aria-label="API keys">
          <thead>
            <tr>
              <th>key id</th>
              <th>owner</th>
              <th>scope</th>
              <th>collections</th>
              <th className="num">rate limit / s</th>
              <th>created</th>
              <th>state</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((k) => (
              <tr key={k.key_id} data-testid={`key-${k.key_id}`}>
                <td>
                  <code>{k.key_id}</code>
                </td>
                <td>{k.owner}</td>
                <td>{k.scope}</td>
                <td>{k.collections?.join(', ') ?? <span className="muted">all</span>}</td>
                <td className="num">{k.rate_limit_per_sec ?? '—'}</td>
                <td>{formatTime(k.created_at_ms)}</td>
                <td>
                  <Badge value={k.revoked ? 'revoked' : 'active'} />
                </td>
                <td className="row-actions">
                  {!k.revoked && (
                    <ConfirmButton
                      label="Revoke"
                      danger
                      title={`Revoke key ${k.key_id}?`}
                      message={<p>Clients using this key are refused from now on (within a few seconds). This cannot be undone.</p>}
                      onConfirm={async () => {
                        await api.revokeKey(k.key_id);
                        keys.reload();
                      }}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {shown?.length === 0 && <p className="muted">No keys.</p>}
    </section>
  );
}
