//! The CD-ROM of a VM: the host's ISO directory, insert and eject (live
//! while the VM runs; kept in the definition either way).

use super::journal::Subject;
use super::{Actor, Services};
use crate::error::CoreError;
use crate::model::Host;

#[derive(Debug, Clone)]
pub struct IsoView {
    /// File name in the host's ISO directory.
    pub name: String,
    /// The display name of `images_maps` that points at it, if any.
    pub display: Option<String>,
    pub bytes: u64,
}

impl Services {
    /// The ISO images of a host.
    pub async fn list_isos(&self, actor: &Actor, hs_name: &str) -> Result<Vec<IsoView>, CoreError> {
        actor.require("vm.instance.read")?;
        let host = self.host(hs_name).await?;
        let files = self
            .engine_of(&host)?
            .iso_list(&self.host_context(&host))
            .await?;
        Ok(files
            .into_iter()
            .map(|f| IsoView {
                display: host
                    .config
                    .images_maps
                    .iter()
                    .find(|(_, file)| **file == f.name)
                    .map(|(display, _)| display.clone()),
                name: f.name,
                bytes: f.bytes,
            })
            .collect())
    }

    /// Insert an ISO (a file name, or an `images_maps` display name), or
    /// eject with `None`.
    pub async fn set_vm_iso(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        iso: Option<&str>,
    ) -> Result<(), CoreError> {
        let action = if iso.is_some() {
            "vm.iso.insert"
        } else {
            "vm.iso.eject"
        };
        let (host, vm) = self
            .owned_vm(actor, "vm.media.write", Some(action), hs_name, vm_uuid)
            .await?;
        let lock = self.vm_lock(vm_uuid);
        let _guard = lock.lock().await;
        let checked = self
            .ensure_not_busy(&vm, action)
            .await
            .and_then(|()| iso.map(|name| iso_file(&host, name)).transpose());
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |file: Option<String>, _op| {
                self.engine_of(&host)?
                    .iso_set(&self.host_context(&host), vm_uuid, file.as_deref())
                    .await?;
                let mut config = vm.config.clone();
                config.cdrom = file.unwrap_or_default();
                self.store()
                    .update_vm_config(vm.id, &config, vm.pending_restart)
                    .await?;
                Ok(())
            },
            |()| serde_json::json!({"iso": iso}),
        )
        .await
    }
}

/// The file an ISO reference names: a display name of `images_maps`, else
/// the name itself (the engine checks it stays inside the ISO directory).
fn iso_file(host: &Host, name: &str) -> Result<String, CoreError> {
    if let Some(file) = host.config.images_maps.get(name) {
        return Ok(file.clone());
    }
    // A plain file name only: `../x.iso` or a path is refused here, and the
    // engine checks again that the resolved file stays in the directory.
    crate::validate::path_name("iso", name)?;
    Ok(name.to_string())
}
