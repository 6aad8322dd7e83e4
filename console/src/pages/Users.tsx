import { useState, type FormEvent } from 'react';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorBox } from '../components/ErrorBox';
import { Modal } from '../components/Modal';
import { formatTime } from '../format';
import { useAction, useResource } from '../hooks';
import { useApi, useSession } from '../session';
import type { Role, User } from '../types';

const MIN_PASSWORD = 8;

/** The signed-in user's own password (sessions only: the API takes no key for it). */
function OwnPassword() {
  const api = useApi();
  const [old, setOld] = useState('');
  const [next, setNext] = useState('');
  const [done, setDone] = useState(false);
  const action = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    void action.run(async () => {
      await api.changePassword(old, next);
      setOld('');
      setNext('');
      setDone(true);
    });
  };
  return (
    <form className="inline" onSubmit={submit} aria-label="Change your password">
      <input type="password" aria-label="current password" placeholder="current password" autoComplete="current-password" value={old} onChange={(e) => setOld(e.target.value)} required />
      <input type="password" aria-label="new password" placeholder={`new password (≥ ${MIN_PASSWORD})`} autoComplete="new-password" minLength={MIN_PASSWORD} value={next} onChange={(e) => setNext(e.target.value)} required />
      <button type="submit" disabled={action.busy}>
        Change password
      </button>
      {done && <span role="status">Password changed: your other sessions end.</span>}
      <ErrorBox error={action.error} />
    </form>
  );
}

function NewUser({ onCreated }: { onCreated: () => void }) {
  const api = useApi();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('user');
  const action = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await api.createUser(username.trim(), password, role);
      setUsername('');
      setPassword('');
      onCreated();
    });
  };
  return (
    <form className="card form-grid" onSubmit={submit} aria-label="New user">
      <h3>New user</h3>
      <label className="field">
        Username
        <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} required pattern="[A-Za-z0-9_.@\-]{1,64}" autoComplete="off" />
      </label>
      <label className="field">
        Password
        <input name="password" type="password" minLength={MIN_PASSWORD} value={password} onChange={(e) => setPassword(e.target.value)} required autoComplete="new-password" />
      </label>
      <label className="field">
        Role
        <select name="role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          <option value="user">user</option>
          <option value="admin">admin</option>
        </select>
      </label>
      <div className="wide">
        <ErrorBox error={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          Create user
        </button>
      </div>
    </form>
  );
}

/** Sets another user's password (an admin's reset: their sessions end). */
function ResetPassword({ user }: { user: User }) {
  const api = useApi();
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState('');
  const action = useAction();
  const close = () => {
    setOpen(false);
    setPassword('');
    action.clear();
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (await action.run(() => api.updateUser(user.username, { new_password: password }))) close();
  };
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Set password
      </button>
      {open && (
        <Modal title={`New password for ${user.username}`} onClose={close}>
          <form onSubmit={submit}>
            <p>Their tokens stop working; their API keys keep working.</p>
            <label className="field">
              New password
              <input type="password" minLength={MIN_PASSWORD} value={password} onChange={(e) => setPassword(e.target.value)} required autoFocus autoComplete="new-password" />
            </label>
            <ErrorBox error={action.error} />
            <div className="actions">
              <button type="button" onClick={close}>
                Cancel
              </button>
              <button type="submit" className="primary" disabled={action.busy}>
                Set password
              </button>
            </div>
          </form>
        </Modal>
      )}
    </>
  );
}

function RoleSelect({ user, onChanged }: { user: User; onChanged: () => void }) {
  const api = useApi();
  const action = useAction();
  const change = (role: Role) =>
    void action.run(async () => {
      await api.updateUser(user.username, { role });
      onChanged();
    });
  return (
    <>
      <select aria-label={`role of ${user.username}`} value={user.role} disabled={action.busy} onChange={(e) => change(e.target.value as Role)}>
        <option value="user">user</option>
        <option value="admin">admin</option>
      </select>
      <ErrorBox error={action.error} />
    </>
  );
}

function UserAdmin() {
  const api = useApi();
  const { me } = useSession();
  const users = useResource(() => api.listUsers(), [api]);
  return (
    <>
      <NewUser onCreated={users.reload} />
      <ErrorBox error={users.error} />
      {users.data && (
        <table aria-label="Users">
          <thead>
            <tr>
              <th>username</th>
              <th>role</th>
              <th>created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.data.map((u) => (
              <tr key={u.username} data-testid={`user-${u.username}`}>
                <td>{u.username}</td>
                <td>
                  <RoleSelect user={u} onChanged={users.reload} />
                </td>
                <td>{formatTime(u.created_at_ms)}</td>
                <td className="row-actions">
                  <ResetPassword user={u} />
                  <ConfirmButton
                    label="Delete"
                    danger
                    disabled={u.username === me?.principal}
                    title={`Delete user ${u.username}?`}
                    message={<p>The user is deleted and their API keys are revoked.</p>}
                    onConfirm={async () => {
                      await api.deleteUser(u.username);
                      users.reload();
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** Your account; for admins, every user: create, change role or password, delete. */
export function Users() {
  const { me, isAdmin, credentialKind } = useSession();
  return (
    <section>
      <h2>Users</h2>
      <div className="card">
        <h3>You</h3>
        <p>
          Signed in as <strong>{me?.principal}</strong> with scope <strong>{me?.scope}</strong>
          {me?.collections ? `, on ${me.collections.join(', ')}` : ', on every collection'} ({credentialKind === 'key' ? 'an API key' : 'a session'}).
        </p>
        {credentialKind === 'token' ? <OwnPassword /> : <p className="muted">Passwords are changed from a session (sign in with your password).</p>}
      </div>
      {isAdmin ? <UserAdmin /> : <p className="muted">Managing users needs an admin.</p>}
    </section>
  );
}
