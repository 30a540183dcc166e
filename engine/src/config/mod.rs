//! Pipeline files: read, render (minijinja), parse (TOML, keeping spans), decode each stage.

pub(crate) mod decode;
pub(crate) mod engine_keys;
pub mod escape;
pub mod load;
pub mod schema;
pub mod spec;
pub mod template;
pub mod vars;

pub use load::{Loaded, load_file, load_text};
pub use spec::{InputRef, PipelineSpec, Port, StageSpec};
pub use vars::VarOverrides;

#[cfg(test)]
mod template_props;
