//! The OpenAPI documents are generated from the faces' routes; these
//! tests keep a committed copy of each (`crates/api/openapi/<face>.json`)
//! equal to what the code generates, so an API change is a visible diff
//! in review, and check what every face's document must hold.
//!
//! After an intended change: `IRONIDC_BLESS_OPENAPI=1 cargo test -p
//! ironidc-api --test openapi` rewrites the copies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use ironidc_api::FACES;

fn committed_copy(face: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("openapi/{face}.json"))
}

#[test]
fn committed_documents_match_the_code() {
    let bless = std::env::var_os("IRONIDC_BLESS_OPENAPI").is_some();
    let mut stale = Vec::new();
    for face in FACES {
        let generated = face.document().to_pretty_json().unwrap() + "\n";
        let path = committed_copy(face.name.as_str());
        if bless {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "the API changed; review and commit the regenerated documents with \
         IRONIDC_BLESS_OPENAPI=1 cargo test -p ironidc-api --test openapi: {stale:?}"
    );
}

#[test]
fn every_operation_lies_under_its_face_and_is_described() {
    for face in FACES {
        let doc = serde_json::to_value(face.document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() > 10, "{}: {} paths", face.name, paths.len());
        let mut ids = BTreeSet::new();
        for (path, item) in paths {
            assert!(
                face.owns(path),
                "{} serves {path} outside its prefixes",
                face.name
            );
            for (method, op) in item.as_object().unwrap() {
                let what = format!("{} {method} {path}", face.name);
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "{what}: operationId {id:?} repeats"
                );
                let summary = op["summary"].as_str().unwrap_or_default();
                assert!(!summary.is_empty(), "{what} has no summary");
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{what}"
                );
            }
        }
        assert!(
            doc["components"]["securitySchemes"]
                .as_object()
                .is_some_and(|s| !s.is_empty()),
            "{}: security schemes",
            face.name
        );
    }
}
