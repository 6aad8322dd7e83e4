import { useState, type FormEvent } from 'react';
import { ErrorBox } from '../components/ErrorBox';
import { useAction } from '../hooks';
import { useSession } from '../session';

type Method = 'password' | 'key';

/** The log-in: a user's name and password (tokens), or an API key. */
export function Login() {
  const session = useSession();
  const [method, setMethod] = useState<Method>('password');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [apiKey, setApiKey] = useState('');
  const action = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(() => (method === 'password' ? session.login(username, password) : session.loginWithKey(apiKey)));
  };
  const choose = (m: Method) => {
    setMethod(m);
    action.clear();
  };

  return (
    <div className="login">
      <form className="card login-card" onSubmit={submit} aria-label="Sign in">
        <h1>
          Vectron <span>console</span>
        </h1>
        {session.notice && <p className="notice">{session.notice}</p>}
        <div className="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={method === 'password'} onClick={() => choose('password')}>
            Password
          </button>
          <button type="button" role="tab" aria-selected={method === 'key'} onClick={() => choose('key')}>
            API key
          </button>
        </div>
        {method === 'password' ? (
          <>
            <label className="field">
              Username
              <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required autoFocus />
            </label>
            <label className="field">
              Password
              <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
            </label>
          </>
        ) : (
          <label className="field">
            API key
            <input name="api-key" type="password" autoComplete="off" placeholder="vx_…" value={apiKey} onChange={(e) => setApiKey(e.target.value)} required autoFocus />
          </label>
        )}
        <ErrorBox error={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
