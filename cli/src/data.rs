//! `vectron collections`, `vectron points` and `vectron search`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use vectron_proto::v1 as pb;
use vectron_sdk::{Client, Collection, Consistency, Distance, Filter, PointId, Record};

use crate::output::{Format, Table, cell, confirm, emit};
use crate::profile::{Target, connect};
use crate::{Exit, Failure, Outcome};

#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// Lists the collections.
    List,
    /// Creates a collection.
    Create(CreateArgs),
    /// A collection's configuration and point count.
    Get { name: String },
    /// A collection's shards: their ranges, replicas, leaders and points.
    Status { name: String },
    /// Deletes a collection and every point in it.
    Delete {
        name: String,
        /// Do not ask (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// Every vector's dimension.
    #[arg(long)]
    pub dimension: u32,
    /// cosine, euclid or dot.
    #[arg(long, default_value = "cosine")]
    pub distance: Distance,
    /// Shards (hash-partitioned by point id) [server default: 1].
    #[arg(long)]
    pub shards: Option<u32>,
    /// Replicas of each shard [server default: 1].
    #[arg(long)]
    pub replication_factor: Option<u32>,
    /// HNSW links per node [server default: 16].
    #[arg(long)]
    pub m: Option<u32>,
    /// HNSW candidate list while building [server default: 200].
    #[arg(long)]
    pub ef_construction: Option<u32>,
    /// A payload index, FIELD:KIND (kind: keyword, integer, float, bool); repeatable.
    #[arg(long = "index", value_parser = parse_index)]
    pub indexes: Vec<(String, pb::PayloadIndexKind)>,
}

fn parse_index(s: &str) -> Result<(String, pb::PayloadIndexKind), String> {
    let (field, kind) = s.rsplit_once(':').ok_or_else(|| format!("{s:?} is not FIELD:KIND"))?;
    let kind = pb::PayloadIndexKind::from_str_name(&kind.to_uppercase())
        .filter(|k| *k != pb::PayloadIndexKind::Unspecified)
        .ok_or_else(|| format!("{kind:?} is not keyword, integer, float or bool"))?;
    Ok((field.to_owned(), kind))
}

fn distance_name(raw: i32) -> String {
    pb::Distance::try_from(raw).map_or_else(|_| raw.to_string(), |d| d.as_str_name().to_lowercase())
}

fn config_json(c: &pb::CollectionConfig) -> Value {
    let hnsw = c.hnsw.unwrap_or_default();
    let indexes: Vec<Value> = c
        .payload_indexes
        .iter()
        .map(|i| {
            let kind =
                pb::PayloadIndexKind::try_from(i.kind).map_or("unknown".into(), |k| k.as_str_name().to_lowercase());
            json!({"field": i.key, "kind": kind})
        })
        .collect();
    json!({
        "name": c.name,
        "dimension": c.dimension,
        "distance": distance_name(c.distance),
        "shards": c.shard_count.max(1),
        "replication_factor": c.replication_factor.max(1),
        "hnsw": {"m": hnsw.m, "ef_construction": hnsw.ef_construction},
        "indexes": indexes,
        "default_rerank": c.default_rerank.as_ref().map(|r| r.strategy.clone()),
    })
}

/// Runs a `vectron collections` command.
pub async fn collections(target: Target, command: CollectionsCommand) -> Outcome {
    let client = connect(&target).await?;
    let format = target.output;
    match command {
        CollectionsCommand::List => {
            let list = client.list_collections().await?;
            let value = Value::Array(list.iter().map(config_json).collect());
            emit(format, &json!({"collections": value}), || {
                let mut t = Table::new(&["name", "dimension", "distance", "shards", "replicas"]);
                for c in &list {
                    t.row(vec![
                        c.name.clone(),
                        c.dimension.to_string(),
                        distance_name(c.distance),
                        c.shard_count.max(1).to_string(),
                        c.replication_factor.max(1).to_string(),
                    ]);
                }
                t
            });
        }
        CollectionsCommand::Create(a) => {
            let mut c = Collection::new(&a.name, a.dimension, a.distance);
            if let Some(n) = a.shards {
                c = c.shards(n);
            }
            if let Some(n) = a.replication_factor {
                c = c.replication_factor(n);
            }
            if a.m.is_some() || a.ef_construction.is_some() {
                // 0 is the server's default for the one not given.
                c = c.hnsw(a.m.unwrap_or(0), a.ef_construction.unwrap_or(0));
            }
            for (field, kind) in &a.indexes {
                c = c.index(field, *kind);
            }
            let created = client.create_collection(c).await?;
            emit(format, &config_json(&created), || {
                Table::fields(&[("created", created.name.clone()), ("dimension", created.dimension.to_string())])
            });
        }
        CollectionsCommand::Get { name } => {
            let got = client.get_collection(&name).await?;
            let config = got.config.unwrap_or_default();
            let mut value = config_json(&config);
            value["points"] = json!(got.points_count);
            emit(format, &value, || {
                Table::fields(&[
                    ("name", config.name.clone()),
                    ("dimension", config.dimension.to_string()),
                    ("distance", distance_name(config.distance)),
                    ("shards", cell(&value["shards"])),
                    ("replication factor", cell(&value["replication_factor"])),
                    ("hnsw", format!("m={} ef_construction={}", value["hnsw"]["m"], value["hnsw"]["ef_construction"])),
                    ("indexes", indexes_cell(&value["indexes"])),
                    ("points", got.points_count.to_string()),
                ])
            });
        }
        CollectionsCommand::Status { name } => {
            let status = client.collection_status(&name).await?;
            emit(format, &status_json(&status), || {
                let mut t = Table::new(&["shard", "range", "points", "leader", "replicas"]);
                for s in &status.shards {
                    let leader =
                        s.replicas.iter().find(|r| r.is_leader).map_or("-".to_owned(), |r| r.worker_id.to_string());
                    let replicas: Vec<String> =
                        s.replicas.iter().map(|r| format!("{}:{}", r.worker_id, replica_state(r.state))).collect();
                    t.row(vec![
                        s.shard_id.to_string(),
                        format!("{:016x}-{:016x}", s.range_start, s.range_end),
                        s.points_count.to_string(),
                        leader,
                        replicas.join(" "),
                    ]);
                }
                t
            });
        }
        CollectionsCommand::Delete { name, yes } => {
            if !yes {
                confirm(&format!("Delete collection {name:?} and every point in it?"))?;
            }
            client.delete_collection(&name).await?;
            emit(format, &json!({"deleted": name}), || Table::fields(&[("deleted", name.clone())]));
        }
    }
    Ok(())
}

fn indexes_cell(indexes: &Value) -> String {
    let list = indexes.as_array().map(Vec::as_slice).unwrap_or_default();
    list.iter().map(|i| format!("{}:{}", cell(&i["field"]), cell(&i["kind"]))).collect::<Vec<_>>().join(" ")
}

fn replica_state(raw: i32) -> String {
    pb::ReplicaState::try_from(raw).map_or_else(|_| raw.to_string(), |s| s.as_str_name().to_lowercase())
}

fn status_json(s: &pb::GetCollectionStatusResponse) -> Value {
    let shards: Vec<Value> = s
        .shards
        .iter()
        .map(|sh| {
            let replicas: Vec<Value> = sh
                .replicas
                .iter()
                .map(|r| json!({"worker": r.worker_id, "address": r.worker_address, "state": replica_state(r.state), "leader": r.is_leader}))
                .collect();
            json!({"shard": sh.shard_id, "range_start": sh.range_start, "range_end": sh.range_end,
                   "points": sh.points_count, "replicas": replicas})
        })
        .collect();
    json!({"collection": s.config.as_ref().map(config_json), "epoch": s.epoch, "shards": shards})
}

#[derive(Debug, Subcommand)]
pub enum PointsCommand {
    /// Reads points by id.
    Get {
        collection: String,
        /// Point ids (numbers, or any other text for string ids).
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        with_vector: bool,
    },
    /// Deletes points by id, or every point a filter matches.
    Delete {
        collection: String,
        #[arg(required_unless_present = "filter", conflicts_with = "filter")]
        ids: Vec<String>,
        /// A filter (JSON, as in the HTTP API).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Counts points (those a filter matches).
    Count {
        collection: String,
        #[arg(long)]
        filter: Option<String>,
    },
    /// Lists points in shard and id order.
    Scroll {
        collection: String,
        #[arg(long)]
        filter: Option<String>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[arg(long)]
        with_vector: bool,
    },
}

/// An id as typed: a number written as one (`7`, not `007` or `+7`) is a numeric id,
/// anything else a string id.
pub fn parse_id(s: &str) -> PointId {
    match s.parse::<u64>() {
        Ok(n) if n.to_string() == s => PointId::Num(n),
        _ => PointId::Str(s.to_owned()),
    }
}

/// A `--filter` argument: JSON in the HTTP API's shape.
pub fn parse_filter(s: Option<&str>) -> Result<Option<Filter>, Failure> {
    s.map(|text| serde_json::from_str::<Filter>(text).map_err(|e| Failure::invalid(format!("--filter: {e}"))))
        .transpose()
}

/// A point as JSON: `{"id", "payload", "vector"}` (what `vectron import` reads back).
pub fn record_json(r: &Record) -> Value {
    let mut v = json!({"id": r.id});
    if let Some(p) = &r.payload {
        v["payload"] = Value::Object(p.clone());
    }
    if let Some(vector) = &r.vector {
        v["vector"] = json!(vector);
    }
    v
}

fn records_table(records: &[Record], with_vector: bool) -> Table {
    let mut headers = vec!["id", "payload"];
    if with_vector {
        headers.push("vector");
    }
    let mut t = Table::new(&headers);
    for r in records {
        let mut row = vec![
            cell(&json!(r.id)),
            r.payload.as_ref().map_or(String::new(), |p| Value::Object(p.clone()).to_string()),
        ];
        if with_vector {
            row.push(r.vector.as_ref().map_or(String::new(), |v| json!(v).to_string()));
        }
        t.row(row);
    }
    t
}

/// Runs a `vectron points` command.
pub async fn points(target: Target, command: PointsCommand) -> Outcome {
    let client = connect(&target).await?;
    let format = target.output;
    match command {
        PointsCommand::Get { collection, ids, with_vector } => {
            let ids: Vec<PointId> = ids.iter().map(|s| parse_id(s)).collect();
            let found = client.get(&collection, &ids, with_vector).await?;
            let value = json!({"points": found.iter().map(record_json).collect::<Vec<_>>()});
            emit(format, &value, || records_table(&found, with_vector));
            if found.len() < ids.len() {
                let missing: Vec<String> =
                    ids.iter().filter(|id| !found.iter().any(|r| &r.id == *id)).map(ToString::to_string).collect();
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("no such point(s) in {collection}: {}", missing.join(", ")),
                ));
            }
        }
        PointsCommand::Delete { collection, ids, filter } => {
            let deleted = match parse_filter(filter.as_deref())? {
                Some(f) => client.delete_by_filter(&collection, &f).await?,
                None => client.delete(&collection, &ids.iter().map(|s| parse_id(s)).collect::<Vec<_>>()).await?,
            };
            emit(format, &json!({"deleted": deleted}), || Table::fields(&[("deleted", deleted.to_string())]));
        }
        PointsCommand::Count { collection, filter } => {
            let n = client.count(&collection, parse_filter(filter.as_deref())?.as_ref()).await?;
            emit(format, &json!({"count": n}), || Table::fields(&[("count", n.to_string())]));
        }
        PointsCommand::Scroll { collection, filter, limit, with_vector } => {
            let filter = parse_filter(filter.as_deref())?;
            let records = scroll_all(&client, &collection, filter.as_ref(), limit, with_vector).await?;
            let value = json!({"points": records.iter().map(record_json).collect::<Vec<_>>()});
            emit(format, &value, || records_table(&records, with_vector));
        }
    }
    Ok(())
}

/// Up to `limit` points (0: all), page by page.
async fn scroll_all(
    client: &Client,
    collection: &str,
    filter: Option<&Filter>,
    limit: u64,
    with_vector: bool,
) -> Result<Vec<Record>, Failure> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let left = if limit == 0 { 1000 } else { (limit - out.len() as u64).min(1000) };
        let (page, next) = client.scroll_with(collection, filter, left as u32, cursor, with_vector).await?;
        out.extend(page);
        cursor = next;
        if cursor.is_none() || (limit != 0 && out.len() as u64 >= limit) {
            return Ok(out);
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConsistencyArg {
    Linearizable,
    Leader,
    Any,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub target: Target,
    pub collection: String,
    /// The query vector, comma-separated (e.g. --vector=0.1,-0.2,0.3).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, required_unless_present = "vector_file")]
    pub vector: Vec<f32>,
    /// A file with the query vector: a JSON array, or numbers separated by commas or
    /// white space (`-`: stdin).
    #[arg(long, conflicts_with = "vector")]
    pub vector_file: Option<PathBuf>,
    /// A filter (JSON, as in the HTTP API).
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long, short = 'k', default_value_t = 10)]
    pub top_k: u32,
    /// HNSW candidate list size (higher: better recall, slower).
    #[arg(long)]
    pub ef: Option<u32>,
    #[arg(long, value_enum)]
    pub consistency: Option<ConsistencyArg>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Print each hit's vector too.
    #[arg(long)]
    pub with_vector: bool,
    /// Leave payloads out.
    #[arg(long)]
    pub no_payload: bool,
}

/// A vector in a file: a JSON array or separated numbers.
pub fn parse_vector_text(text: &str) -> Result<Vec<f32>, String> {
    let text = text.trim();
    if text.starts_with('[') {
        return serde_json::from_str(text).map_err(|e| format!("not a JSON array of numbers: {e}"));
    }
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f32>().map_err(|_| format!("{s:?} is not a number")))
        .collect()
}

/// Runs `vectron search`.
pub async fn search(a: SearchArgs) -> Outcome {
    let vector = match &a.vector_file {
        None => a.vector.clone(),
        Some(path) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text =
                    std::fs::read_to_string(path).map_err(|e| Failure::invalid(format!("{}: {e}", path.display())))?;
            }
            parse_vector_text(&text).map_err(|e| Failure::invalid(format!("{}: {e}", path.display())))?
        }
    };
    let filter = parse_filter(a.filter.as_deref())?;
    let client = connect(&a.target).await?;
    let mut search = client.search(&a.collection, vector, a.top_k);
    if let Some(f) = &filter {
        search = search.filter(f)?;
    }
    if let Some(ef) = a.ef {
        search = search.ef(ef);
    }
    if let Some(c) = a.consistency {
        search = search.consistency(match c {
            ConsistencyArg::Linearizable => Consistency::Linearizable,
            ConsistencyArg::Leader => Consistency::Leader,
            ConsistencyArg::Any => Consistency::Any,
        });
    }
    if let Some(t) = a.timeout {
        search = search.timeout(t);
    }
    if !a.no_payload {
        search = search.with_payload();
    }
    if a.with_vector {
        search = search.with_vector();
    }
    let result = search.send().await?;
    let hits: Vec<Value> = result
        .hits
        .iter()
        .map(|h| {
            let mut v = json!({"id": h.id, "score": h.score});
            if let Some(p) = &h.payload {
                v["payload"] = Value::Object(p.clone());
            }
            if let Some(vector) = &h.vector {
                v["vector"] = json!(vector);
            }
            v
        })
        .collect();
    let value = json!({"hits": hits, "partial": result.partial, "missing_shards": result.missing_shards,
                       "query_id": result.query_id});
    emit(a.target.output, &value, || {
        let mut headers = vec!["rank", "id", "score"];
        if !a.no_payload {
            headers.push("payload");
        }
        if a.with_vector {
            headers.push("vector");
        }
        let mut t = Table::new(&headers);
        for (rank, h) in result.hits.iter().enumerate() {
            let mut row = vec![(rank + 1).to_string(), cell(&json!(h.id)), format!("{:.6}", h.score)];
            if !a.no_payload {
                row.push(h.payload.as_ref().map_or(String::new(), |p| Value::Object(p.clone()).to_string()));
            }
            if a.with_vector {
                row.push(h.vector.as_ref().map_or(String::new(), |v| json!(v).to_string()));
            }
            t.row(row);
        }
        t
    });
    if result.partial && a.target.output == Format::Table {
        eprintln!("warning: partial answer, shards {:?} did not answer in time", result.missing_shards);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_vectors_indexes_and_filters_parse_as_typed() {
        assert_eq!(parse_id("42"), PointId::Num(42));
        assert_eq!(parse_id("doc-7"), PointId::Str("doc-7".into()));
        assert_eq!(parse_id("-1"), PointId::Str("-1".into()), "not a u64: a string id");
        assert_eq!(parse_id("007"), PointId::Str("007".into()), "not written as a number");
        assert_eq!(parse_vector_text(" [0.5, -1, 2e0] \n").unwrap(), vec![0.5, -1.0, 2.0]);
        assert_eq!(parse_vector_text("0.5,-1\n2").unwrap(), vec![0.5, -1.0, 2.0]);
        assert!(parse_vector_text("0.5,x").unwrap_err().contains("\"x\""));
        assert_eq!(parse_index("meta.tag:keyword").unwrap(), ("meta.tag".into(), pb::PayloadIndexKind::Keyword));
        assert!(parse_index("tag").is_err());
        assert!(parse_index("tag:text").is_err());
        assert!(parse_filter(Some(r#"{"must": [{"key": "a", "match": {"value": 1}}]}"#)).unwrap().is_some());
        assert_eq!(parse_filter(Some("{nope")).unwrap_err().exit, Exit::Invalid);
        assert!(parse_filter(None).unwrap().is_none());
        assert_eq!("dot".parse::<Distance>(), Ok(Distance::Dot));
        assert!("l2".parse::<Distance>().unwrap_err().contains("cosine, euclid or dot"));
    }
}
