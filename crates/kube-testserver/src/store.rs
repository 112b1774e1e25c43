//! The object store: every object as `serde_json::Value` keyed by
//! (resource, namespace, name), one global revision counter shared by all
//! objects (like etcd's), a bounded event history for watches, and the watchers.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::{ApiError, OPTIMISTIC_LOCK_MSG};
use crate::microtime;
use crate::resources::{self, Allocator, ResourceDef};

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history and fanned out to watchers.
#[derive(Debug)]
pub struct Change {
    /// Revision of the change.
    pub rev: u64,
    /// Event type.
    pub kind: EventType,
    /// The resource changed.
    pub res: &'static ResourceDef,
    /// The object after the change (for DELETED: the last state, with the deletion revision).
    pub object: Value,
}

type Key = (&'static str, &'static str, String, String);

fn key(res: &ResourceDef, ns: &str, name: &str) -> Key {
    (res.group, res.plural, ns.to_string(), name.to_string())
}

/// The start of a watch: events to replay, then the live receiver.
pub type WatchStart = (Vec<Arc<Change>>, mpsc::UnboundedReceiver<Arc<Change>>);

/// Why a watch cannot start from the requested revision: the history was compacted.
#[derive(Debug)]
pub struct TooOld {
    /// The oldest revision from which a watch can still start.
    pub compacted: u64,
}

#[derive(Debug)]
struct Inner {
    revision: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches may start from any revision >= this one.
    compacted: u64,
    watchers: Vec<mpsc::UnboundedSender<Arc<Change>>>,
    alloc: Allocator,
}

/// The shared store. Critical sections are short and never await.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    random: std::collections::hash_map::RandomState,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        let meta = m.entry("metadata").or_insert(json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(field.to_string(), v);
        }
    }
}

fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove(field);
    }
}

/// Parses a resourceVersion as apiserver does (`strconv.ParseUint`), 500 on failure.
pub fn parse_rv(s: &str) -> Result<u64, ApiError> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse::<u64>().map_err(|e| {
        let why = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        ApiError::internal(&format!("strconv.ParseUint: parsing \"{s}\": {why}"))
    })
}

/// The content of an object that a write can change, for "no-op write" detection:
/// apiserver does not bump the revision when the stored bytes would not change.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        remove_meta(&mut v, "resourceVersion");
        v
    };
    strip(a) == strip(b)
}

impl Store {
    /// A store keeping at most `history_limit` events for watches.
    pub fn new(history_limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                revision: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit,
                compacted: 1,
                watchers: Vec::new(),
                alloc: Allocator::default(),
            }),
            random: std::collections::hash_map::RandomState::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write
        // is a single insert), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn random_u64(&self, salt: u64) -> u64 {
        let mut h = self.random.build_hasher();
        h.write_u64(salt);
        h.finish()
    }

    fn uid(&self, salt: u64) -> String {
        let a = self.random_u64(salt);
        let b = self.random_u64(salt ^ 0x9e37_79b9_7f4a_7c15);
        // A version-4 UUID layout from two random words.
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// The revision watches must start at or after.
    pub fn compacted(&self) -> u64 {
        self.lock().compacted
    }

    /// Drops the whole watch history (like an etcd compaction at the current
    /// revision); returns the compacted revision.
    pub fn compact(&self) -> u64 {
        let mut g = self.lock();
        g.history.clear();
        g.compacted = g.revision;
        g.compacted
    }

    /// Changes how many events the history keeps (trims immediately).
    pub fn set_history_limit(&self, limit: usize) {
        let mut g = self.lock();
        g.history_limit = limit;
        trim(&mut g);
    }

    fn commit(
        &self,
        g: &mut Inner,
        kind: EventType,
        res: &'static ResourceDef,
        k: Key,
        mut obj: Value,
    ) -> Value {
        g.revision += 1;
        set_meta(&mut obj, "resourceVersion", json!(g.revision.to_string()));
        if kind == EventType::Deleted {
            g.objects.remove(&k);
        } else {
            g.objects.insert(k, obj.clone());
        }
        let change = Arc::new(Change {
            rev: g.revision,
            kind,
            res,
            object: obj.clone(),
        });
        g.history.push_back(change.clone());
        trim(g);
        g.watchers.retain(|w| w.send(change.clone()).is_ok());
        obj
    }

    /// GET one object.
    pub fn get(&self, res: &'static ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&key(res, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// LIST objects of a resource (all namespaces when `ns` is `None`), with the list revision.
    pub fn list(&self, res: &'static ResourceDef, ns: Option<&str>) -> (Vec<Value>, u64) {
        let g = self.lock();
        let items = g
            .objects
            .iter()
            .filter(|((grp, pl, n, _), _)| {
                *grp == res.group && *pl == res.plural && ns.is_none_or(|ns| ns == n)
            })
            .map(|(_, v)| v.clone())
            .collect();
        (items, g.revision)
    }

    /// CREATE: fills name (generateName), namespace, uid, creationTimestamp and defaults.
    pub fn create(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if let Some(rv) = meta_str(&obj, "resourceVersion") {
            if !rv.is_empty() {
                return Err(ApiError::internal(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
        }
        let mut g = self.lock();
        let salt = g.revision;
        if meta_str(&obj, "name").is_none_or(str::is_empty) {
            if let Some(gen) = meta_str(&obj, "generateName").map(str::to_string) {
                // apiserver's SimpleNameGenerator: five characters from this alphabet.
                const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let r = self.random_u64(salt);
                let suffix: String = (0..5)
                    .map(|i| ALPHA[((r >> (i * 8)) % ALPHA.len() as u64) as usize] as char)
                    .collect();
                set_meta(&mut obj, "name", json!(format!("{gen}{suffix}")));
            }
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        if res.namespaced {
            set_meta(&mut obj, "namespace", json!(ns));
        } else {
            remove_meta(&mut obj, "namespace");
        }
        resources::validate(res, &obj)?;
        let k = key(res, ns, &name);
        if g.objects.contains_key(&k) {
            return Err(ApiError::already_exists(res, &name));
        }
        set_meta(&mut obj, "uid", json!(self.uid(salt)));
        set_meta(
            &mut obj,
            "creationTimestamp",
            json!(microtime::now_rfc3339()),
        );
        remove_meta(&mut obj, "managedFields");
        if res.has_generation {
            set_meta(&mut obj, "generation", json!(1));
        }
        if res.has_status {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        resources::apply_defaults(res, &mut obj, None, &mut g.alloc);
        resources::prune_unknown_status(res, &mut obj);
        Ok(self.commit(&mut g, EventType::Added, res, k, obj))
    }

    /// UPDATE (PUT) of the object or of its `status` subresource.
    /// Returns the stored object and whether it was created (create-on-update).
    pub fn update(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
    ) -> Result<(Value, bool), ApiError> {
        let new_rv = parse_rv(meta_str(&obj, "resourceVersion").unwrap_or(""))?;
        let mut g = self.lock();
        let k = key(res, ns, name);
        let Some(old) = g.objects.get(&k).cloned() else {
            if !res.allow_create_on_update || status_only {
                return Err(ApiError::not_found(res, name));
            }
            drop(g);
            remove_meta(&mut obj, "resourceVersion");
            return self.create(res, ns, obj).map(|v| (v, true));
        };
        let cur_rv = parse_rv(meta_str(&old, "resourceVersion").unwrap_or(""))?;
        if new_rv == 0 {
            if !res.allow_unconditional_update {
                // genericregistry.Store.Update: the registry's own check, named by resource.
                let qualified = res.qualified();
                return Err(ApiError::invalid(
                    &qualified,
                    res.group,
                    res.plural,
                    name,
                    &[(
                        "metadata.resourceVersion".into(),
                        "Invalid value: 0x0: must be specified for an update".into(),
                    )],
                ));
            }
        } else if new_rv != cur_rv {
            return Err(ApiError::conflict(res, name, OPTIMISTIC_LOCK_MSG));
        }
        if let (Some(want), Some(have)) = (meta_str(&obj, "uid"), meta_str(&old, "uid")) {
            if !want.is_empty() && want != have {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
                ));
            }
        }
        let mut new = if status_only {
            let mut n = old.clone();
            if let (Some(m), Some(s)) = (n.as_object_mut(), obj.get("status")) {
                m.insert("status".into(), s.clone());
            }
            n
        } else {
            for f in ["uid", "creationTimestamp", "generation"] {
                match old.get("metadata").and_then(|m| m.get(f)) {
                    Some(v) => set_meta(&mut obj, f, v.clone()),
                    None => remove_meta(&mut obj, f),
                }
            }
            remove_meta(&mut obj, "managedFields");
            if res.namespaced {
                set_meta(&mut obj, "namespace", json!(ns));
            }
            if res.has_status {
                if let (Some(m), Some(s)) = (obj.as_object_mut(), old.get("status")) {
                    m.insert("status".into(), s.clone());
                }
            }
            obj
        };
        if let Some(m) = new.as_object_mut() {
            m.insert("kind".into(), json!(res.kind));
            m.insert("apiVersion".into(), json!(res.api_version()));
        }
        set_meta(&mut new, "resourceVersion", json!(cur_rv.to_string()));
        resources::apply_defaults(res, &mut new, Some(&old), &mut g.alloc);
        resources::prune_unknown_status(res, &mut new);
        resources::validate(res, &new)?;
        if same_content(&new, &old) {
            return Ok((old, false));
        }
        if res.has_generation && !status_only {
            let changed = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("metadata");
                    m.remove("status");
                }
                v
            };
            if changed(&new) != changed(&old) {
                let gen = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                set_meta(&mut new, "generation", json!(gen + 1));
            }
        }
        Ok((self.commit(&mut g, EventType::Modified, res, k, new), false))
    }

    /// PATCH (RFC 7386 merge patch) of the object or its status. A
    /// `metadata.resourceVersion` in the patch is a precondition.
    pub fn patch(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get(res, ns, name)?;
        let cur = meta_str(&old, "resourceVersion").unwrap_or("").to_string();
        if let Some(want) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if parse_rv(want)? != parse_rv(&cur)? {
                return Err(ApiError::conflict(res, name, OPTIMISTIC_LOCK_MSG));
            }
        }
        let mut merged = old.clone();
        resources::merge_patch(&mut merged, patch);
        // The patch applies to the revision just read; a concurrent write turns into a
        // conflict here, which apiserver would retry internally — rare in tests.
        set_meta(&mut merged, "resourceVersion", json!(cur));
        self.update(res, ns, name, merged, status_only)
            .map(|(v, _)| v)
    }

    /// DELETE with optional preconditions (resourceVersion, uid).
    pub fn delete(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        pre_rv: Option<&str>,
        pre_uid: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut g = self.lock();
        let k = key(res, ns, name);
        let old = g
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let have_rv = meta_str(&old, "resourceVersion").unwrap_or("");
        if let Some(want) = pre_rv {
            if want != have_rv {
                return Err(ApiError::conflict(res, name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have_rv}"
                )));
            }
        }
        let have_uid = meta_str(&old, "uid").unwrap_or("");
        if let Some(want) = pre_uid {
            if want != have_uid {
                return Err(ApiError::conflict(res, name, &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {have_uid}"
                )));
            }
        }
        Ok(self.commit(&mut g, EventType::Deleted, res, k, old))
    }

    /// Stores an object as-is (test seeding: nodes, foreign leases), assigning
    /// revision, uid and creationTimestamp when missing. Replaces any existing object.
    pub fn put(&self, mut obj: Value) -> Result<Value, ApiError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let res = resources::find_kind(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(&format!("no resource served for {api_version} {kind}"))
        })?;
        let ns = if res.namespaced {
            meta_str(&obj, "namespace").unwrap_or("default").to_string()
        } else {
            String::new()
        };
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        if res.namespaced {
            set_meta(&mut obj, "namespace", json!(ns));
        }
        let mut g = self.lock();
        let salt = g.revision;
        if meta_str(&obj, "uid").is_none() {
            set_meta(&mut obj, "uid", json!(self.uid(salt)));
        }
        if meta_str(&obj, "creationTimestamp").is_none() {
            set_meta(
                &mut obj,
                "creationTimestamp",
                json!(microtime::now_rfc3339()),
            );
        }
        let k = key(res, &ns, &name);
        let kind = if g.objects.contains_key(&k) {
            EventType::Modified
        } else {
            EventType::Added
        };
        Ok(self.commit(&mut g, kind, res, k, obj))
    }

    /// Starts a watch: the events to replay first and the live receiver.
    /// `from` = `None` means "current state as ADDED events, then changes".
    pub fn watch(
        &self,
        res: &'static ResourceDef,
        from: Option<u64>,
    ) -> Result<WatchStart, TooOld> {
        let mut g = self.lock();
        let replay: Vec<Arc<Change>> = match from {
            None => g
                .objects
                .iter()
                .filter(|((grp, pl, _, _), _)| *grp == res.group && *pl == res.plural)
                .map(|(_, v)| {
                    Arc::new(Change {
                        rev: meta_str(v, "resourceVersion")
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        kind: EventType::Added,
                        res,
                        object: v.clone(),
                    })
                })
                .collect(),
            Some(rv) => {
                if rv < g.compacted {
                    return Err(TooOld {
                        compacted: g.compacted,
                    });
                }
                g.history.iter().filter(|c| c.rev > rv).cloned().collect()
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        g.watchers.push(tx);
        Ok((replay, rx))
    }
}

fn trim(g: &mut Inner) {
    while g.history.len() > g.history_limit {
        if let Some(c) = g.history.pop_front() {
            g.compacted = c.rev;
        }
    }
}
