//! The face table: every API dialect declares its name, the URL prefixes
//! it owns, how it renders a core error, which credentials it reads, and
//! its routes. The application is assembled from the table, so routing of
//! unknown paths, the per-address rate limit and the authorization matrix
//! all follow it, and a new face is one more entry.

use std::marker::PhantomData;

use axum::extract::{FromRef, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ironidc_core::CoreError;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::credentials::CredentialReader;
use crate::AppState;

/// The faces ironidc speaks. The string is what audit rows record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaceName {
    OpenIdcs,
    Ptpb,
    /// `GET /metrics` (not a face, but a caller to name in the logs).
    Metrics,
    /// Faces built outside this crate (the toolkit's own tests).
    Custom(&'static str),
}

impl FaceName {
    pub fn as_str(self) -> &'static str {
        match self {
            FaceName::OpenIdcs => "openidcs",
            FaceName::Ptpb => "ptpb",
            FaceName::Metrics => "metrics",
            FaceName::Custom(name) => name,
        }
    }
}

impl std::fmt::Display for FaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API dialect.
pub trait Face: Send + Sync + Sized + 'static {
    const NAME: FaceName;
    /// Path prefixes this face owns (ending in `/`). Every route of the
    /// face lies under one of them, and no two faces share one.
    const PREFIXES: &'static [&'static str];
    /// Where the caller's credential is read from, tried in order.
    const CREDENTIALS: &'static [CredentialReader];
    /// The face's error reply; every core error and extractor rejection
    /// becomes one.
    type Error: From<CoreError> + From<Unrouted> + IntoResponse + Send + 'static;

    /// Other paths of an operation (`(alias, canonical)`), as deployed
    /// clients spell them. `routes` routes them; the document lists them.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];

    /// The face's routes, each described for OpenAPI. The toolkit adds
    /// state, fallbacks and limits.
    fn routes() -> OpenApiRouter<FaceState<Self>>;

    /// The face's front matter (title, description, security schemes)
    /// added to the document generated from its routes.
    fn document(doc: OpenApi) -> OpenApi {
        doc
    }
}

/// The router state of face `F`: the application state, typed by face so
/// the generic extractors (`kit`) reject in `F`'s format.
pub struct FaceState<F> {
    pub app: AppState,
    face: PhantomData<fn() -> F>,
}

impl<F> FaceState<F> {
    pub fn new(app: AppState) -> Self {
        Self {
            app,
            face: PhantomData,
        }
    }
}

impl<F> Clone for FaceState<F> {
    fn clone(&self) -> Self {
        Self::new(self.app.clone())
    }
}

impl<F> FromRef<FaceState<F>> for AppState {
    fn from_ref(state: &FaceState<F>) -> AppState {
        state.app.clone()
    }
}

/// The front matter every face's document carries: its title and
/// description, ironidc's version and licence.
pub fn front_matter(doc: &mut OpenApi, title: &str, description: &str) {
    doc.info.title = title.into();
    doc.info.description = Some(description.into());
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.contact = None;
    doc.info.license = Some(
        utoipa::openapi::LicenseBuilder::new()
            .name("AGPL-3.0-or-later")
            .identifier(Some("AGPL-3.0-or-later"))
            .build(),
    );
}

/// A request no route serves, as the face's fallback reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    /// No route has this path (404).
    NoSuchPath,
    /// The path exists, not with this method (405).
    WrongMethod,
}

impl Unrouted {
    pub fn status(self) -> axum::http::StatusCode {
        match self {
            Unrouted::NoSuchPath => axum::http::StatusCode::NOT_FOUND,
            Unrouted::WrongMethod => axum::http::StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Unrouted::NoSuchPath => "no such endpoint",
            Unrouted::WrongMethod => "method not allowed on this endpoint",
        }
    }
}

/// A face with its type erased, as the table holds it.
#[derive(Clone, Copy)]
pub struct FaceEntry {
    pub name: FaceName,
    pub prefixes: &'static [&'static str],
    pub credentials: &'static [CredentialReader],
    render: fn(CoreError) -> Response,
    render_unrouted: fn(Unrouted) -> Response,
    serve: fn(AppState) -> (Router, OpenApi),
    document: fn() -> OpenApi,
}

impl FaceEntry {
    pub const fn of<F: Face>() -> Self {
        Self {
            name: F::NAME,
            prefixes: F::PREFIXES,
            credentials: F::CREDENTIALS,
            render: render::<F>,
            render_unrouted: render_unrouted::<F>,
            serve: serve::<F>,
            document: document::<F>,
        }
    }

    /// The face's routes over `app` and its OpenAPI document, from one
    /// build of its routes.
    pub fn serve(&self, app: AppState) -> (Router, OpenApi) {
        (self.serve)(app)
    }

    /// The face's OpenAPI document alone, generated from its routes.
    pub fn document(&self) -> OpenApi {
        (self.document)()
    }

    /// A core error in this face's format.
    pub fn render(&self, e: CoreError) -> Response {
        (self.render)(e)
    }

    pub fn owns(&self, path: &str) -> bool {
        self.prefixes.iter().any(|p| path.starts_with(p))
    }
}

fn render<F: Face>(e: CoreError) -> Response {
    F::Error::from(e).into_response()
}

fn render_unrouted<F: Face>(u: Unrouted) -> Response {
    F::Error::from(u).into_response()
}

fn serve<F: Face>(app: AppState) -> (Router, OpenApi) {
    let (router, doc) = F::routes().split_for_parts();
    (router.with_state(FaceState::new(app)), described::<F>(doc))
}

fn document<F: Face>() -> OpenApi {
    described::<F>(F::routes().split_for_parts().1)
}

/// The document generated from `F`'s routes, with its aliases and front
/// matter.
fn described<F: Face>(mut doc: OpenApi) -> OpenApi {
    for (alias, canonical) in F::ALIASES {
        if let Some(item) = doc.paths.paths.get(*canonical).cloned() {
            doc.paths.paths.insert((*alias).to_string(), alias_of(item));
        }
    }
    F::document(doc)
}

/// The description of an operation under another path: the same, with
/// operation ids of its own (they must be unique in a document).
fn alias_of(mut item: utoipa::openapi::PathItem) -> utoipa::openapi::PathItem {
    for op in [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(id) = &op.operation_id {
            op.operation_id = Some(format!("{id}Alias"));
        }
    }
    item
}

/// The faces of the product. Later faces add their entry here.
pub const FACES: &[FaceEntry] = &[
    FaceEntry::of::<crate::openidcs::OpenIdcs>(),
    FaceEntry::of::<crate::ptpb::Ptpb>(),
];

/// The faces an application serves, as the middleware and the fallbacks
/// consult them.
#[derive(Clone, Copy)]
pub struct FaceTable(pub &'static [FaceEntry]);

impl FaceTable {
    /// The face that owns `path`, if any.
    pub fn owner(&self, path: &str) -> Option<&'static FaceEntry> {
        self.0.iter().find(|f| f.owns(path))
    }

    /// Refuse a table where two faces claim overlapping prefixes: the
    /// owner of a path would depend on the order.
    pub fn check(&self) -> Result<(), String> {
        for (i, a) in self.0.iter().enumerate() {
            for b in &self.0[i + 1..] {
                for pa in a.prefixes {
                    for pb in b.prefixes {
                        if pa.starts_with(pb) || pb.starts_with(pa) {
                            return Err(format!(
                                "faces {} and {} both claim {pa} / {pb}",
                                a.name, b.name
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A request no route serves. Under a face's prefix, the face answers in
/// its format (404 or 405), after authenticating the caller so that
/// probing without a credential learns nothing about which paths exist.
/// Elsewhere the path is left to the web UI; until it lands, plain text.
pub(crate) async fn refuse_unrouted(state: AppState, req: Request, why: Unrouted) -> Response {
    let (parts, _) = req.into_parts();
    let Some(face) = state.faces.owner(parts.uri.path()) else {
        return (why.status(), why.message()).into_response();
    };
    match crate::auth::authenticate_with(&parts, &state, face.name, face.credentials).await {
        Ok(_) => (face.render_unrouted)(why),
        Err(e) => face.render(e),
    }
}
