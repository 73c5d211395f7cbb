//! PTPB's paging parameters and the id list of its deletes.

use super::envelope::PtpbError;

/// PTPB paging: `page_size` (default 10, at most 100) and `page` (from 1).
pub fn page(
    page_size: Option<u32>,
    page: Option<u32>,
) -> Result<ironidc_core::accounts::Page, PtpbError> {
    let limit = match page_size {
        None => 10,
        Some(0) => {
            return Err(ironidc_core::CoreError::invalid("page_size", "must be at least 1").into())
        }
        Some(n) => n.min(100),
    };
    let page = match page {
        None => 1,
        Some(0) => {
            return Err(ironidc_core::CoreError::invalid("page", "must be at least 1").into())
        }
        Some(n) => n,
    };
    Ok(ironidc_core::accounts::Page {
        offset: (page - 1).saturating_mul(limit),
        limit,
    })
}

/// `{"id_list": [..]}`, the body of PTPB's deletes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct IdList {
    pub id_list: Vec<i64>,
}
