//! Server-side apply, the one way the harness writes objects: the harness owns every field it sets under one field
//! manager ([`super::FIELD_MANAGER`]) and takes fields over by force, so re-applying a tailored manifest (a scenario
//! rerun, `up` after a crash) converges instead of conflicting with what an earlier run wrote.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::FIELD_MANAGER;

/// Applies `object` as `name` through `api` and returns what the API server stored.
pub async fn server_side_apply<K, O>(api: &Api<K>, name: &str, object: &O) -> Result<K, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
    O: Serialize + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}
