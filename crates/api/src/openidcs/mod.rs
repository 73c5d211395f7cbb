//! The native OpenIDCS face (`shared/spec/openidcs-api.md`): hosts by
//! `hs_name`, VMs by `vm_uuid`, the `{code,msg,data,timestamp}` envelope
//! and `Authorization: Bearer <token>`.

mod envelope;
pub mod extract;
mod hosts;
mod network;
mod system;
mod vms;

use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;

pub use envelope::ApiError;

use crate::AppState;
use extract::Caller;

pub fn router(state: AppState) -> Router {
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
        .route("/api/system/engine", get(system::engines))
        .route("/api/system/logger/detail", get(system::logs))
        .route("/api/system/logget", get(system::logs))
        .route("/api/system/tasker", get(system::tasks))
        .route("/api/system/tasget", get(system::tasks))
        // hosts
        .route("/api/server/detail", get(hosts::list))
        .route("/api/server/detail/{hs_name}", get(hosts::detail))
        .route("/api/server/create", post(hosts::create))
        .route("/api/server/update/{hs_name}", put(hosts::update))
        .route("/api/server/delete/{hs_name}", delete(hosts::remove))
        .route("/api/server/powers/{hs_name}", post(hosts::enable))
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Unknown paths: authenticate first, so probing without a token learns
/// nothing about which paths exist.
async fn not_found(_caller: Caller) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed(_caller: Caller) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}
