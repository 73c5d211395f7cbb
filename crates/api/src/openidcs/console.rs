//! The VNC console: `remote` hands out a one-time noVNC URL; the page's
//! WebSocket comes back to `/api/client/console/ws?token=…`, which is
//! relayed to the VM's VNC unix socket; `console/{hs}/{vm}` shows and
//! revokes the VM's console tokens.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ironidc_core::engine::ConsoleEndpoint;
use ironidc_core::service::ConsoleLease;
use serde::Deserialize;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiError, ApiResult, Data};
use super::params::VmPath;
use super::wire::{ConsoleRevokedReply, ConsoleStateReply};
use crate::kit::{Caller, Path, Query};
use crate::AppState;

/// `GET /api/client/remote/{hs}/{vm}` → `data` is the console URL.
#[utoipa::path(
    get,
    path = "/api/client/remote/{hs_name}/{vm_uuid}",
    tag = "console",
    operation_id = "openConsole",
    params(VmPath),
    responses((status = 200, description = "The console URL.", body = ReplyOf<String>), ChangeRefusals)
)]
pub async fn remote(
    State(s): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<String> {
    let ticket = s.services.console_open(&actor, &hs, &vm).await?;
    Ok(Data(format!(
        "{}{}",
        public_base(&s, &headers),
        ticket.path
    )))
}

/// The controller's URL as the browser reaches it: `public_url` when set,
/// else `http://` + the request's Host.
fn public_base(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &s.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// `GET /api/client/console/{hs}/{vm}`: console availability and tokens.
#[utoipa::path(
    get,
    path = "/api/client/console/{hs_name}/{vm_uuid}",
    tag = "console",
    operation_id = "consoleState",
    params(VmPath),
    responses((status = 200, description = "The console state.", body = ReplyOf<ConsoleStateReply>), ReadRefusals)
)]
pub async fn state(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<ConsoleStateReply> {
    Ok(Data(
        s.services.console_state(&actor, &hs, &vm).await?.into(),
    ))
}

/// `DELETE /api/client/console/{hs}/{vm}`: revoke (logout); open sessions
/// close within the relay's check interval.
#[utoipa::path(
    delete,
    path = "/api/client/console/{hs_name}/{vm_uuid}",
    tag = "console",
    operation_id = "revokeConsole",
    params(VmPath),
    responses((status = 200, description = "How many tokens were revoked.", body = ReplyOf<ConsoleRevokedReply>), ReadRefusals)
)]
pub async fn revoke(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<ConsoleRevokedReply> {
    let revoked = s.services.console_revoke(&actor, &hs, &vm).await?;
    Ok(Data(ConsoleRevokedReply {
        vm_uuid: vm,
        revoked,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    token: Option<String>,
}

/// The console WebSocket. The token is the credential (a browser cannot
/// set headers on a WebSocket); a bad one is refused before the upgrade.
#[utoipa::path(
    get,
    path = "/api/client/console/ws",
    tag = "console",
    operation_id = "consoleWebSocket",
    params(WsQuery),
    responses((status = 101, description = "Switched to the WebSocket protocol; binary frames carry RFB (VNC)."), ChangeRefusals),
    security(("consoleToken" = []))
)]
pub async fn websocket(
    State(s): State<AppState>,
    Query(q): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The token first: a bad one is refused whatever else the request is.
    let token = q.token.unwrap_or_default();
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            s.services.console_token_usable(&token).await?;
            return Err(ApiError::bad_request(format!(
                "expected a WebSocket upgrade: {e}"
            )));
        }
    };
    let attached = s.services.console_attach(&token).await?;
    let ConsoleEndpoint::Unix(socket) = attached.endpoint;
    let session = LeaseSession(attached.lease);
    let vm = attached.vm_uuid;
    let options = s.console_relay;
    Ok(ws
        .on_upgrade(move |socket_ws| async move {
            match ironidc_console::relay(socket_ws, &socket, &session, options).await {
                Ok(stats) => tracing::info!(%vm, to_vm = stats.bytes_to_vm, from_vm = stats.bytes_from_vm, "console closed"),
                Err(e) => tracing::warn!(%vm, error = %e, "console relay failed"),
            }
        })
        .into_response())
}

struct LeaseSession(Arc<ConsoleLease>);

#[async_trait]
impl ironidc_console::ConsoleSession for LeaseSession {
    async fn still_valid(&self, active: bool) -> bool {
        self.0.still_valid(active).await
    }
}
