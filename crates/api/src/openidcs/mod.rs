//! The native OpenIDCS face (`shared/spec/openidcs-api.md`): hosts by
//! `hs_name`, VMs by `vm_uuid`, the `{code,msg,data,timestamp}` envelope
//! and `Authorization: Bearer <token>`.

mod console;
mod disks;
mod envelope;
mod guest;
mod hosts;
mod network;
mod nics;
mod params;
mod system;
mod vm_body;
mod vms;

use axum::routing::{delete, get, post, put};
use axum::Router;

pub use envelope::ApiError;

use crate::credentials::CredentialReader;
use crate::face::{Face, FaceName, FaceState};

/// The OpenIDCS face.
pub struct OpenIdcs;

impl Face for OpenIdcs {
    const NAME: FaceName = FaceName::OpenIdcs;
    const PREFIXES: &'static [&'static str] = &[
        "/api/system/",
        "/api/token/",
        "/api/server/",
        "/api/client/",
    ];
    const CREDENTIALS: &'static [CredentialReader] = &[CredentialReader::Authorization];
    type Error = ApiError;

    fn routes() -> Router<FaceState<Self>> {
        routes()
    }
}

fn routes() -> Router<FaceState<OpenIdcs>> {
    Router::new()
        // system; the /api/token/* paths are those deployed OpenIDCS serves
        .route("/api/system/resets", post(system::reset_token))
        .route("/api/token/reset", post(system::reset_token))
        .route("/api/system/create", post(system::set_token))
        .route("/api/token/set", post(system::set_token))
        .route("/api/system/tquery", get(system::token_info))
        .route("/api/token/current", get(system::token_info))
        .route("/api/system/saving", post(system::export_config))
        .route("/api/system/loader", post(system::import_config))
        .route("/api/system/statis", get(system::stats))
        .route("/api/system/health", get(system::health))
        .route("/api/system/openapi.yaml", get(system::openapi))
        .route("/api/system/engine", get(system::engines))
        .route("/api/system/logger/detail", get(system::logs))
        .route("/api/system/logget", get(system::logs))
        .route("/api/system/tasker", get(system::tasks))
        .route("/api/system/tasget", get(system::tasks))
        .route("/api/system/tasker/{id}", get(system::task))
        // hosts
        .route("/api/server/detail", get(hosts::list))
        .route("/api/server/detail/{hs_name}", get(hosts::detail))
        .route("/api/server/create", post(hosts::create))
        .route("/api/server/update/{hs_name}", put(hosts::update))
        .route("/api/server/delete/{hs_name}", delete(hosts::remove))
        .route("/api/server/powers/{hs_name}", post(hosts::enable))
        .route("/api/server/status", get(hosts::connection_test))
        .route("/api/server/status/{hs_name}", get(hosts::status))
        .route("/api/server/ipaddr/{hs_name}", get(network::pools))
        // vms
        .route("/api/client/detail/{hs_name}", get(vms::list))
        .route("/api/client/detail/{hs_name}/{vm_uuid}", get(vms::detail))
        .route("/api/client/create/{hs_name}", post(vms::create))
        .route("/api/client/update/{hs_name}/{vm_uuid}", put(vms::update))
        .route(
            "/api/client/delete/{hs_name}/{vm_uuid}",
            delete(vms::remove),
        )
        .route("/api/client/powers/{hs_name}/{vm_uuid}", post(vms::power))
        .route("/api/client/status/{hs_name}/{vm_uuid}", get(vms::status))
        .route(
            "/api/client/remote/{hs_name}/{vm_uuid}",
            get(console::remote),
        )
        .route("/api/client/console/ws", get(console::websocket))
        .route(
            "/api/client/console/{hs_name}/{vm_uuid}",
            get(console::state).delete(console::revoke),
        )
        .route("/api/client/upload", post(guest::upload))
        .route(
            "/api/client/monitor/{hs_name}/{vm_uuid}",
            get(guest::monitor),
        )
        .route(
            "/api/client/agent/{hs_name}/{vm_uuid}",
            get(guest::agent_status),
        )
        .route(
            "/api/client/password/{hs_name}/{vm_uuid}",
            post(guest::password),
        )
        .route(
            "/api/client/hostname/{hs_name}/{vm_uuid}",
            post(guest::hostname),
        )
        .route(
            "/api/client/file/{hs_name}/{vm_uuid}",
            post(guest::write_file),
        )
        .route("/api/client/exec/{hs_name}/{vm_uuid}", post(guest::exec))
        .route(
            "/api/client/interfaces/{hs_name}/{vm_uuid}",
            get(guest::interfaces),
        )
        .route(
            "/api/client/snapshot/{hs_name}/{vm_uuid}",
            get(disks::snapshot_list).post(disks::snapshot_create),
        )
        .route(
            "/api/client/snapshot/{hs_name}/{vm_uuid}/{name}",
            delete(disks::snapshot_delete),
        )
        .route(
            "/api/client/snapshot/{hs_name}/{vm_uuid}/{name}/revert",
            post(disks::snapshot_revert),
        )
        .route(
            "/api/client/backup/{hs_name}/{vm_uuid}",
            get(disks::backup_list).post(disks::backup_create),
        )
        .route(
            "/api/client/backup/{hs_name}/{vm_uuid}/{name}",
            delete(disks::backup_delete),
        )
        .route(
            "/api/client/backup/{hs_name}/{vm_uuid}/{name}/restore",
            post(disks::backup_restore),
        )
        .route(
            "/api/client/reinstall/{hs_name}/{vm_uuid}",
            post(disks::reinstall),
        )
        .route("/api/server/isos/{hs_name}", get(disks::iso_list))
        .route(
            "/api/client/iso/{hs_name}/{vm_uuid}",
            post(disks::iso_insert).delete(disks::iso_eject),
        )
        .route(
            "/api/client/nics/{hs_name}/{vm_uuid}",
            get(nics::list).post(nics::plug),
        )
        .route(
            "/api/client/nics/{hs_name}/{vm_uuid}/{name}",
            delete(nics::unplug),
        )
        .route("/api/client/scaner/{hs_name}", post(vms::scan))
        .route(
            "/api/client/owner/{hs_name}/{vm_uuid}",
            post(vms::set_owner),
        )
        .route(
            "/api/client/natget/{hs_name}/{vm_uuid}",
            get(network::nat_list),
        )
        .route(
            "/api/client/natadd/{hs_name}/{vm_uuid}",
            post(network::nat_add),
        )
        .route(
            "/api/client/natdel/{hs_name}/{vm_uuid}/{index}",
            delete(network::nat_delete),
        )
        .route(
            "/api/client/ipaddr/detail/{hs_name}/{vm_uuid}",
            get(network::ip_list),
        )
        .route(
            "/api/client/ipaddr/create/{hs_name}/{vm_uuid}",
            post(network::ip_add),
        )
        .route(
            "/api/client/ipaddr/delete/{hs_name}/{vm_uuid}/{index}",
            delete(network::ip_delete),
        )
        .route(
            "/api/client/proxys/detail/{hs_name}/{vm_uuid}",
            get(network::proxy_list),
        )
        .route(
            "/api/client/proxys/create/{hs_name}/{vm_uuid}",
            post(network::proxy_add),
        )
        .route(
            "/api/client/proxys/delete/{hs_name}/{vm_uuid}/{index}",
            delete(network::proxy_delete),
        )
}
