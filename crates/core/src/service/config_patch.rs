//! Partial updates of a stored config (a VM's, a host's): the keys a
//! request names replace the stored ones, every other key keeps its value,
//! and the result is decoded again, so a bad value is refused naming its
//! field.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CoreError;

/// `stored` with the top-level `changes` applied. `forget` names stored
/// keys that are not carried over (write-only secrets); `prefix` starts
/// the field names in errors (`config.`).
pub(super) fn merge<'a, T: Serialize + DeserializeOwned>(
    stored: &T,
    changes: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
    forget: &[&str],
    prefix: &str,
) -> Result<T, CoreError> {
    let mut current = serde_json::to_value(stored)
        .map_err(|e| CoreError::Store(crate::store::StoreError::Corrupt(e.to_string())))?;
    if let Some(obj) = current.as_object_mut() {
        for key in forget {
            obj.remove(*key);
        }
        for (key, value) in changes {
            obj.insert(key.clone(), value.clone());
        }
    }
    serde_path_to_error::deserialize(current).map_err(|e| {
        let path = e.path().to_string();
        CoreError::invalid(&format!("{prefix}{path}"), e.into_inner().to_string())
    })
}
