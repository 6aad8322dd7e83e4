// The signed-in session: one ApiClient for the app, its credential kept in this tab's
// sessionStorage (a reload stays signed in; closing the tab signs out), and who it is.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { ApiClient, type Credential } from './api';
import type { Me } from './types';

const STORAGE_KEY = 'vectron.console.credential';

function stored(): Credential | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Credential) : null;
  } catch {
    return null;
  }
}

function store(c: Credential | null): void {
  if (c) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
  else sessionStorage.removeItem(STORAGE_KEY);
}

export interface Session {
  api: ApiClient;
  /** Null until signed in (and while a stored credential is being checked). */
  me: Me | null;
  isAdmin: boolean;
  credentialKind: Credential['kind'] | null;
  /** Why the last session ended, shown on the log-in form. */
  notice: string | null;
  login(username: string, password: string): Promise<void>;
  loginWithKey(key: string): Promise<void>;
  logout(): Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(() => stored() !== null);
  const [notice, setNotice] = useState<string | null>(null);
  const [kind, setKind] = useState<Credential['kind'] | null>(null);

  const api = useMemo(
    () =>
      new ApiClient(stored(), (c) => {
        store(c);
        setKind(c?.kind ?? null);
        if (!c) {
          setMe(null);
          setNotice((n) => n ?? 'Your session has ended: please sign in again.');
        }
      }),
    [],
  );

  // A credential from before a reload is used only once the API accepts it.
  useEffect(() => {
    if (!api.current) return;
    api
      .me()
      .then((m) => {
        setKind(api.current?.kind ?? null);
        setMe(m);
      })
      .catch((e: unknown) => {
        api.setCredential(null);
        setNotice(`Please sign in again (${e instanceof Error ? e.message : e}).`);
      })
      .finally(() => setChecking(false));
  }, [api]);

  const login = useCallback(
    async (username: string, password: string) => {
      const m = await api.login(username, password);
      setNotice(null);
      setMe(m);
    },
    [api],
  );
  const loginWithKey = useCallback(
    async (key: string) => {
      const m = await api.loginWithKey(key.trim());
      setNotice(null);
      setMe(m);
    },
    [api],
  );
  const logout = useCallback(async () => {
    setNotice('Signed out.');
    await api.logout().catch(() => undefined); // signed out here either way
  }, [api]);

  const value = useMemo<Session>(
    () => ({
      api,
      me: checking ? null : me,
      isAdmin: me?.scope === 'admin',
      credentialKind: kind,
      notice,
      login,
      loginWithKey,
      logout,
    }),
    [api, me, checking, kind, notice, login, loginWithKey, logout],
  );
  if (checking) return <p className="centered muted">Checking the session…</p>;
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

/** The API client of a signed-in page. */
export function useApi(): ApiClient {
  return useSession().api;
}
