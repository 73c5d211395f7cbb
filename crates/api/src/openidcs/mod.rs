//! The native OpenIDCS face (`shared/spec/openidcs-api.md`): hosts by
//! `hs_name`, VMs by `vm_uuid`, the `{code,msg,data,timestamp}` envelope
//! and `Authorization: Bearer <token>`.

mod console;
mod disks;
mod docs;
mod envelope;
mod guest;
mod host_body;
mod hosts;
mod network;
mod network_body;
mod nics;
mod params;
mod system;
mod vm_body;
mod vms;
mod wire;

use axum::routing::{get, post};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

    fn routes() -> OpenApiRouter<FaceState<Self>> {
        routes()
    }

    /// The /api/token/* and short spellings deployed OpenIDCS serves.
    const ALIASES: &'static [(&'static str, &'static str)] = &[
        ("/api/token/reset", "/api/system/resets"),
        ("/api/token/set", "/api/system/create"),
        ("/api/token/current", "/api/system/tquery"),
        ("/api/system/logget", "/api/system/logger/detail"),
        ("/api/system/tasget", "/api/system/tasker"),
    ];

    fn document(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
        docs::finish(doc)
    }
}

fn routes() -> OpenApiRouter<FaceState<OpenIdcs>> {
    OpenApiRouter::new()
        .routes(routes!(system::reset_token))
        .route("/api/token/reset", post(system::reset_token))
        .routes(routes!(system::set_token))
        .route("/api/token/set", post(system::set_token))
        .routes(routes!(system::token_info))
        .route("/api/token/current", get(system::token_info))
        .routes(routes!(system::export_config))
        .routes(routes!(system::import_config))
        .routes(routes!(system::stats))
        .routes(routes!(system::health))
        .routes(routes!(system::engines))
        .routes(routes!(system::logs))
        .route("/api/system/logget", get(system::logs))
        .routes(routes!(system::tasks))
        .route("/api/system/tasget", get(system::tasks))
        .routes(routes!(system::task))
        .routes(routes!(hosts::list))
        .routes(routes!(hosts::detail))
        .routes(routes!(hosts::create))
        .routes(routes!(hosts::update))
        .routes(routes!(hosts::remove))
        .routes(routes!(hosts::enable))
        .routes(routes!(hosts::connection_test))
        .routes(routes!(hosts::status))
        .routes(routes!(network::pools))
        .routes(routes!(vms::list_all))
        .routes(routes!(vms::by_id))
        .routes(routes!(vms::list))
        .routes(routes!(vms::detail))
        .routes(routes!(vms::create))
        .routes(routes!(vms::update))
        .routes(routes!(vms::remove))
        .routes(routes!(vms::power))
        .routes(routes!(vms::status))
        .routes(routes!(console::remote))
        .routes(routes!(console::websocket))
        .routes(routes!(console::state, console::revoke))
        .routes(routes!(guest::upload))
        .routes(routes!(guest::monitor))
        .routes(routes!(guest::agent_status))
        .routes(routes!(guest::password))
        .routes(routes!(guest::hostname))
        .routes(routes!(guest::write_file))
        .routes(routes!(guest::exec))
        .routes(routes!(guest::interfaces))
        .routes(routes!(disks::snapshot_list, disks::snapshot_create))
        .routes(routes!(disks::snapshot_delete))
        .routes(routes!(disks::snapshot_revert))
        .routes(routes!(disks::backup_list, disks::backup_create))
        .routes(routes!(disks::backup_delete))
        .routes(routes!(disks::backup_restore))
        .routes(routes!(disks::reinstall))
        .routes(routes!(disks::iso_list))
        .routes(routes!(disks::iso_insert, disks::iso_eject))
        .routes(routes!(nics::list, nics::plug))
        .routes(routes!(nics::unplug))
        .routes(routes!(vms::scan))
        .routes(routes!(vms::set_owner))
        .routes(routes!(network::nat_list))
        .routes(routes!(network::nat_add))
        .routes(routes!(network::nat_delete))
        .routes(routes!(network::ip_list))
        .routes(routes!(network::ip_add))
        .routes(routes!(network::ip_delete))
        .routes(routes!(network::proxy_list))
        .routes(routes!(network::proxy_add))
        .routes(routes!(network::proxy_delete))
}
