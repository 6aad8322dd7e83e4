// The JSON shapes of the Vectron HTTP API the console uses (gateway/src/http/*.rs).

export type PointId = number | string;
export type Scope = 'read' | 'write' | 'admin';
export type Role = 'user' | 'admin';
export type Distance = 'cosine' | 'euclid' | 'dot';
export type PayloadIndexKind = 'keyword' | 'integer' | 'float' | 'bool';
export type Consistency = 'leader' | 'linearizable' | 'any';
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Payload = Record<string, Json>;

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  access_expires_at: number;
  refresh_expires_at: number;
}

export interface Me {
  principal: string;
  scope: Scope;
  /** Absent: every collection. */
  collections?: string[];
}

export interface Health {
  status: string;
  placement_leader?: string;
  placement_term?: number;
}

export interface ClusterStats {
  epoch: number;
  workers: number;
  workers_up: number;
  collections: number;
  shards: number;
  shards_with_leader: number;
  replicas: number;
  points: number;
}

export interface Worker {
  id: number;
  address: string;
  zone: string;
  /** up, down, draining, … (lower-case) */
  state: string;
  last_heartbeat_ms: number;
  state_since_ms: number;
}

export interface PlacementShard {
  id: number;
  range_start: number;
  range_end: number;
  replicas: number[];
  voters: number[];
  leader: number;
  leader_term: number;
  points: number;
}

export interface PlacementCollection {
  name: string | null;
  shards: PlacementShard[];
}

export interface Alert {
  id: number;
  kind: string;
  subject: string;
  message: string;
  raised_at_ms: number;
  resolved_at_ms: number | null;
}

export interface Rerank {
  strategy: string;
  query_text?: string;
  params?: Record<string, Json>;
  candidates?: number;
}

export interface PayloadIndex {
  key: string;
  kind: PayloadIndexKind;
}

export interface CollectionConfig {
  name: string;
  dimension: number;
  distance: Distance;
  shard_count?: number;
  replication_factor?: number;
  hnsw?: { m?: number; ef_construction?: number } | null;
  payload_indexes?: PayloadIndex[];
  default_rerank?: Rerank;
}

export interface CollectionInfo {
  collection: CollectionConfig;
  points_count: number;
}

export interface Replica {
  worker_id: number;
  address: string;
  /** active, catching_up or unreachable */
  state: string;
  leader: boolean;
}

export interface ShardStatus {
  shard_id: number;
  range_start: number;
  /** 0 means 2^64. */
  range_end: number;
  points_count: number;
  replicas: Replica[];
}

export interface CollectionStatus {
  collection: CollectionConfig;
  epoch: number;
  shards: ShardStatus[];
}

export interface NewPoint {
  id: PointId;
  vector: number[];
  payload?: Payload;
}

export interface Point {
  id: PointId;
  vector?: number[];
  payload?: Payload;
}

export interface SearchRequest {
  vector: number[];
  top_k: number;
  filter?: Json;
  ef?: number;
  score_threshold?: number;
  with_payload: boolean;
  with_vector?: boolean;
  consistency?: Consistency;
  rerank?: Rerank;
}

export interface Hit {
  id: PointId;
  score: number;
  vector?: number[];
  payload?: Payload;
  rerank_score?: number;
  explanation?: string;
}

export interface SearchReply {
  hits: Hit[];
  partial: boolean;
  missing_shards: number[];
  query_id: string;
  reranked: boolean;
  rerank_skipped?: string;
}

export interface ScrollReply {
  points: Point[];
  next_cursor: string | null;
}

export interface Feedback {
  collection: string;
  query_id: string;
  point_id: PointId;
  relevance: number;
  clicked?: boolean;
  position?: number;
  comment?: string;
  query_text?: string;
}

export interface FeedbackStats {
  count: number;
  queries: number;
  points: number;
  mean_relevance: number;
  positive: number;
  negative: number;
  clicked: number;
}

export interface ApiKey {
  key_id: string;
  owner: string;
  scope: Scope;
  collections?: string[];
  rate_limit_per_sec?: number;
  created_at_ms: number;
  revoked: boolean;
}

export interface NewKey {
  owner?: string;
  scope: Scope;
  collections: string[];
  rate_limit_per_sec?: number;
}

export interface CreatedKey {
  key: ApiKey;
  secret_key: string;
}

export interface User {
  username: string;
  role: Role;
  created_at_ms: number;
}
