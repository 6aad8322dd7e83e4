//! The placement group's Raft types and its state machine, persisted in RocksDB.
//!
//! The whole [`ClusterState`] is small (workers, collections, shard map, alerts), so the
//! state machine keeps it in memory and writes it, with the last applied log id and
//! membership, as one `raft_meta` record after every applied batch: a restart resumes
//! exactly where the last write left off, and replays nothing twice. A snapshot is the
//! encoded state.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::RwLock;
use prost::Message;
use serde::{Deserialize, Serialize};
use vectron_common::raft::applied::AppliedMeta;
use vectron_common::raft::log_store::RocksLogStore;
use vectron_common::raft::{NodeId, PLACEMENT_GROUP};
use vectron_proto::internal::{ClusterState, PlacementCommand, PlacementCommandResult};

use crate::state;

/// A placement command as a log entry: the prost encoding of a [`PlacementCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The outcome of an applied entry: the prost encoding of a [`PlacementCommandResult`]
/// (empty for blank and membership entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Request {
    pub fn new(cmd: &PlacementCommand) -> Request {
        Request(cmd.encode_to_vec())
    }
}

impl Response {
    pub fn decode(&self) -> Result<PlacementCommandResult, prost::DecodeError> {
        PlacementCommandResult::decode(&self.0[..])
    }
}

openraft::declare_raft_types!(
    /// The placement group's Raft types.
    pub PlacementTypes:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = Entry<PlacementTypes>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type LogStore = RocksLogStore<PlacementTypes>;

/// What the state machine persists: everything it knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    applied: AppliedMeta,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

/// The state the service reads (through [`ClusterView`]) and the state machine writes.
#[derive(Debug, Clone)]
struct Applied {
    meta: AppliedMeta,
    cluster: ClusterState,
}

/// A read-only handle on the applied cluster state, for the service and scheduler.
#[derive(Debug, Clone)]
pub struct ClusterView(Arc<RwLock<Applied>>);

impl ClusterView {
    /// A copy of the applied state.
    pub fn snapshot(&self) -> ClusterState {
        self.0.read().cluster.clone()
    }

    /// Runs `f` on the applied state without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        f(&self.0.read().cluster)
    }

    pub fn epoch(&self) -> u64 {
        self.0.read().cluster.routing.as_ref().map_or(0, |r| r.epoch)
    }
}

const SM_KEY: &[u8] = b"sm";

/// The placement state machine.
#[derive(Debug, Clone)]
pub struct PlacementStateMachine {
    /// Gives access to the group's `raft_meta` records.
    meta: LogStore,
    applied: Arc<RwLock<Applied>>,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

impl PlacementStateMachine {
    /// Opens the state machine stored beside `log` (same DB, same group).
    pub fn open(log: &LogStore) -> Result<PlacementStateMachine, StorageError<NodeId>> {
        let meta = log.clone();
        let applied = match meta.get_meta::<Persisted>(SM_KEY)? {
            None => Applied { meta: AppliedMeta::default(), cluster: state::initial_state() },
            Some(p) => Applied { meta: p.applied, cluster: ClusterState::decode(&p.state[..]).map_err(read_err)? },
        };
        debug_assert_eq!(meta.group(), PLACEMENT_GROUP);
        Ok(PlacementStateMachine { meta, applied: Arc::new(RwLock::new(applied)) })
    }

    pub fn view(&self) -> ClusterView {
        ClusterView(self.applied.clone())
    }

    fn persist(&self, applied: &Applied) -> Result<(), StorageError<NodeId>> {
        let p = Persisted { applied: applied.meta.clone(), state: applied.cluster.encode_to_vec() };
        self.meta.put_meta(SM_KEY, &p)
    }

    fn current_snapshot(&self) -> Snapshot<PlacementTypes> {
        let applied = self.applied.read();
        let data = applied.cluster.encode_to_vec();
        let id = match applied.meta.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, data.len()),
            None => "empty".into(),
        };
        Snapshot {
            meta: SnapshotMeta {
                last_log_id: applied.meta.last_applied,
                last_membership: applied.meta.membership.clone(),
                snapshot_id: id,
            },
            snapshot: Box::new(Cursor::new(data)),
        }
    }
}

impl RaftSnapshotBuilder<PlacementTypes> for PlacementStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<PlacementTypes>, StorageError<NodeId>> {
        Ok(self.current_snapshot())
    }
}

impl RaftStateMachine<PlacementTypes> for PlacementStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let a = self.applied.read();
        Ok((a.meta.last_applied, a.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<PlacementTypes>> + Send,
        I::IntoIter: Send,
    {
        // Apply to a copy, persist it, then publish it: readers never see a state that
        // is not on disk.
        let mut next = self.applied.read().clone();
        let mut responses = Vec::new();
        for entry in entries {
            let response = match next.meta.record(entry) {
                None => Response::default(),
                Some(Request(bytes)) => {
                    let result = match PlacementCommand::decode(&bytes[..]) {
                        Ok(cmd) => state::apply(&mut next.cluster, &cmd),
                        Err(e) => PlacementCommandResult {
                            result: Some(vectron_proto::internal::placement_command_result::Result::Error(
                                vectron_proto::internal::PlacementError {
                                    code: vectron_proto::v1::ErrorCode::InvalidArgument as i32,
                                    message: format!("undecodable placement command: {e}"),
                                },
                            )),
                        },
                    };
                    Response(result.encode_to_vec())
                }
            };
            responses.push(response);
        }
        self.persist(&next)?;
        *self.applied.write() = next;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let cluster = ClusterState::decode(&snapshot.into_inner()[..]).map_err(read_err)?;
        let next = Applied {
            meta: AppliedMeta { last_applied: meta.last_log_id, membership: meta.last_membership.clone() },
            cluster,
        };
        self.persist(&next).map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
        *self.applied.write() = next;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<PlacementTypes>>, StorageError<NodeId>> {
        // The state machine is persistent, so its current state is always a valid
        // snapshot.
        if self.applied.read().meta.last_applied.is_none() {
            return Ok(None);
        }
        Ok(Some(self.current_snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::EntryPayload;
    use openraft::testing::{StoreBuilder, Suite};
    use vectron_common::raft::open_storage;

    struct Builder;

    impl StoreBuilder<PlacementTypes, LogStore, PlacementStateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, PlacementStateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().expect("temp dir");
            let storage = open_storage(dir.path(), Default::default()).expect("open storage");
            let log = LogStore::new(storage.db().clone(), PLACEMENT_GROUP, false);
            let sm = PlacementStateMachine::open(&log)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).expect("openraft storage suite");
    }

    #[tokio::test]
    async fn applied_state_survives_reopen() {
        use vectron_proto::internal::RegisterWorkerRequest;
        use vectron_proto::internal::placement_command::Command;
        let dir = tempfile::tempdir().unwrap();
        let cmd = PlacementCommand {
            now_ms: 5,
            command: Some(Command::RegisterWorker(RegisterWorkerRequest {
                worker_id: 0,
                address: "127.0.0.1:9".into(),
                zone: "z".into(),
            })),
        };
        {
            let storage = open_storage(dir.path(), Default::default()).unwrap();
            let log = LogStore::new(storage.db().clone(), PLACEMENT_GROUP, false);
            let mut sm = PlacementStateMachine::open(&log).unwrap();
            let entry = Entry::<PlacementTypes> {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 1),
                payload: EntryPayload::Normal(Request::new(&cmd)),
            };
            let out = sm.apply([entry]).await.unwrap();
            assert!(matches!(
                out[0].decode().unwrap().result,
                Some(vectron_proto::internal::placement_command_result::Result::Worker(_))
            ));
        }
        let storage = open_storage(dir.path(), Default::default()).unwrap();
        let log = LogStore::new(storage.db().clone(), PLACEMENT_GROUP, false);
        let mut sm = PlacementStateMachine::open(&log).unwrap();
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(1));
        let workers = sm.view().read(|s| s.routing.as_ref().unwrap().workers.clone());
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].address, "127.0.0.1:9");
    }
}
