// The console's client of the Vectron HTTP API (same origin only: the gateway's content
// security policy admits no other). One `ApiClient` holds the credential — a log-in's
// tokens or an API key — attaches it to every call, refreshes the access token once when
// a call answers 401, and turns error answers `{"error": {"code", "message",
// "retryable"}}` into an `ApiError`.

import type {
  Alert,
  ApiKey,
  ClusterStats,
  CollectionConfig,
  CollectionInfo,
  CollectionStatus,
  CreatedKey,
  Feedback,
  FeedbackStats,
  Health,
  Json,
  Me,
  NewKey,
  NewPoint,
  PlacementCollection,
  Point,
  PointId,
  Role,
  ScrollReply,
  SearchReply,
  SearchRequest,
  TokenPair,
  User,
  Worker,
} from './types';

/** What the console authenticates with. */
export type Credential =
  | { kind: 'token'; accessToken: string; refreshToken: string; accessExpiresAt: number; refreshExpiresAt: number }
  | { kind: 'key'; apiKey: string };

/** An error answer of the API (or a failure to reach it); the message names the code. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly retryable: boolean;

  constructor(status: number, code: string, detail: string, retryable = false) {
    super(`${code}: ${detail}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryable = retryable;
  }
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

interface RequestOptions {
  /** Send the credential (default true); log-in, refresh and log-out carry theirs in the body. */
  auth?: boolean;
  /** Answer the body as text instead of JSON. */
  text?: boolean;
}

function tokenCredential(p: TokenPair): Credential {
  return {
    kind: 'token',
    accessToken: p.access_token,
    refreshToken: p.refresh_token,
    accessExpiresAt: p.access_expires_at,
    refreshExpiresAt: p.refresh_expires_at,
  };
}

/** The API error an answer carries, or one made from its status when it has no JSON error. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; retryable?: boolean } };
    if (body.error?.code) {
      return new ApiError(response.status, body.error.code, body.error.message ?? '', body.error.retryable ?? false);
    }
  } catch {
    // not JSON: fall through
  }
  return new ApiError(response.status, `HTTP_${response.status}`, text.slice(0, 200) || response.statusText);
}

const enc = encodeURIComponent;

export class ApiClient {
  private credential: Credential | null;
  private refreshing: Promise<boolean> | null = null;
  private readonly onCredential: (c: Credential | null) => void;

  /** `onCredential` hears of every change: refreshed tokens, and null when the credential stops working. */
  constructor(credential: Credential | null, onCredential: (c: Credential | null) => void) {
    this.credential = credential;
    this.onCredential = onCredential;
  }

  get current(): Credential | null {
    return this.credential;
  }

  setCredential(c: Credential | null): void {
    this.credential = c;
    this.onCredential(c);
  }

  /** One call; a 401 on a token session refreshes the tokens once and tries again. */
  async request<T>(method: Method, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    const auth = options.auth ?? true;
    const sent = this.credential;
    let response = await this.send(method, path, body, auth ? sent : null);
    if (response.status === 401 && auth && sent) {
      if (sent.kind === 'token' && (await this.refresh(sent))) {
        response = await this.send(method, path, body, this.credential);
      }
      if (response.status === 401 && this.credential !== null) {
        const error = await errorOf(response);
        this.setCredential(null); // the session is over: back to the log-in
        throw error;
      }
    }
    if (!response.ok) throw await errorOf(response);
    if (options.text) return (await response.text()) as T;
    return (await response.json()) as T;
  }

  private async send(method: Method, path: string, body: unknown, credential: Credential | null): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (credential?.kind === 'token') headers.authorization = `Bearer ${credential.accessToken}`;
    if (credential?.kind === 'key') headers['x-api-key'] = credential.apiKey;
    try {
      return await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'UNREACHABLE', `the gateway did not answer (${e instanceof Error ? e.message : e})`, true);
    }
  }

  /** Trades the refresh token for new tokens (one refresh at a time); false when refused. */
  private refresh(sent: Credential & { kind: 'token' }): Promise<boolean> {
    const current = this.credential;
    if (current?.kind === 'token' && current.accessToken !== sent.accessToken) {
      return Promise.resolve(true); // another call refreshed meanwhile
    }
    this.refreshing ??= (async () => {
      try {
        const pair = await this.request<TokenPair>(
          'POST',
          '/v1/auth/refresh',
          { refresh_token: sent.refreshToken },
          { auth: false },
        );
        this.setCredential(tokenCredential(pair));
        return true;
      } catch {
        return false;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  // --- accounts ---

  async login(username: string, password: string): Promise<Me> {
    const pair = await this.request<TokenPair>('POST', '/v1/auth/login', { username, password }, { auth: false });
    const credential = tokenCredential(pair);
    const me = await this.meWith(credential);
    this.setCredential(credential);
    return me;
  }

  async loginWithKey(apiKey: string): Promise<Me> {
    const credential: Credential = { kind: 'key', apiKey };
    const me = await this.meWith(credential);
    this.setCredential(credential);
    return me;
  }

  /** Who `credential` is, without adopting it (a wrong key must not end the current session). */
  private async meWith(credential: Credential): Promise<Me> {
    const response = await this.send('GET', '/v1/auth/me', undefined, credential);
    if (!response.ok) throw await errorOf(response);
    return (await response.json()) as Me;
  }

  /** Ends the session: the refresh token is revoked (a key has nothing to revoke). */
  async logout(): Promise<void> {
    const c = this.credential;
    this.setCredential(null);
    if (c?.kind === 'token') {
      await this.request('POST', '/v1/auth/logout', { refresh_token: c.refreshToken }, { auth: false });
    }
  }

  me = () => this.request<Me>('GET', '/v1/auth/me');
  changePassword = (old_password: string, new_password: string) =>
    this.request<{ ok: boolean }>('POST', '/v1/auth/password', { old_password, new_password });

  listKeys = (owner?: string) =>
    this.request<{ keys: ApiKey[] }>('GET', `/v1/auth/keys${owner ? `?owner=${enc(owner)}` : ''}`).then((r) => r.keys);
  createKey = (key: NewKey) => this.request<CreatedKey>('POST', '/v1/auth/keys', key);
  revokeKey = (keyId: string) => this.request<ApiKey>('DELETE', `/v1/auth/keys/${enc(keyId)}`);

  listUsers = () => this.request<{ users: User[] }>('GET', '/v1/auth/users').then((r) => r.users);
  createUser = (username: string, password: string, role: Role) =>
    this.request<User>('POST', '/v1/auth/users', { username, password, role });
  updateUser = (username: string, change: { role?: Role; new_password?: string }) =>
    this.request<User>('PATCH', `/v1/auth/users/${enc(username)}`, change);
  deleteUser = (username: string) => this.request<{ ok: boolean }>('DELETE', `/v1/auth/users/${enc(username)}`);

  // --- operations ---

  health = () => this.request<Health>('GET', '/v1/system/health');
  stats = () => this.request<ClusterStats>('GET', '/v1/admin/stats');
  workers = () => this.request<{ workers: Worker[] }>('GET', '/v1/admin/workers').then((r) => r.workers);
  drainWorker = (id: number) => this.request<{ worker: Worker }>('POST', `/v1/admin/workers/${id}/drain`);
  removeWorker = (id: number, force: boolean) =>
    this.request<{ removed: Worker }>('DELETE', `/v1/admin/workers/${id}${force ? '?force=true' : ''}`);
  placement = () =>
    this.request<{ epoch: number; collections: PlacementCollection[] }>('GET', '/v1/admin/collections');
  alerts = (all: boolean) =>
    this.request<{ alerts: Alert[] }>('GET', `/v1/alerts${all ? '?all=true' : ''}`).then((r) => r.alerts);
  resolveAlert = (id: number) => this.request<{ alert: Alert }>('POST', `/v1/alerts/${id}/resolve`);
  metrics = () => this.request<string>('GET', '/metrics', undefined, { text: true });

  // --- collections and points ---

  collections = () =>
    this.request<{ collections: CollectionConfig[] }>('GET', '/v1/collections').then((r) => r.collections);
  collection = (name: string) => this.request<CollectionInfo>('GET', `/v1/collections/${enc(name)}`);
  createCollection = (config: CollectionConfig) =>
    this.request<{ collection: CollectionConfig }>('POST', '/v1/collections', config);
  deleteCollection = (name: string) => this.request<{ deleted: boolean }>('DELETE', `/v1/collections/${enc(name)}`);
  collectionStatus = (name: string) => this.request<CollectionStatus>('GET', `/v1/collections/${enc(name)}/status`);
  feedbackStats = (name: string) =>
    this.request<FeedbackStats>('GET', `/v1/collections/${enc(name)}/feedback/stats`);

  upsert = (name: string, points: NewPoint[]) =>
    this.request<{ upserted: number }>('POST', `/v1/collections/${enc(name)}/points`, { points, wait: true });
  point = (name: string, id: PointId) =>
    this.request<{ point: Point }>('GET', `/v1/collections/${enc(name)}/points/${enc(String(id))}`).then(
      (r) => r.point,
    );
  scroll = (name: string, limit: number, cursor?: string, filter?: Json) =>
    this.request<ScrollReply>('POST', `/v1/collections/${enc(name)}/points/scroll`, {
      limit,
      cursor,
      filter,
      with_payload: true,
    });
  count = (name: string, filter?: Json) =>
    this.request<{ count: number }>('POST', `/v1/collections/${enc(name)}/points/count`, { filter }).then(
      (r) => r.count,
    );
  search = (name: string, search: SearchRequest) =>
    this.request<SearchReply>('POST', `/v1/collections/${enc(name)}/points/search`, search);
  feedback = (f: Feedback) => this.request<{ accepted: boolean }>('POST', '/v1/feedback', f);
}
