//! The built-in connectors.

pub mod file;

use crate::sdk::ConnectorPlugin;
use std::sync::Arc;

/// Every built-in connector plugin.
pub fn builtin() -> Vec<Arc<dyn ConnectorPlugin>> {
    vec![
        Arc::new(file::FileSourcePlugin),
        Arc::new(file::FileSinkPlugin),
    ]
}
