//! One page of a Stripe list.

/// One page of a Stripe list, objects kept as raw JSON so the caller parses them with its own
/// tolerant types.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The objects on this page, in Stripe's order (newest first).
    pub data: Vec<serde_json::Value>,
    /// Whether Stripe has more objects after the last one of this page.
    pub has_more: bool,
}

impl Page {
    /// The `id` of the last object, the `starting_after` cursor of the next page.
    pub fn last_id(&self) -> Option<&str> {
        self.data.last()?.get("id")?.as_str()
    }
}
