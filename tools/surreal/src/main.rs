//! `surreal`: SurrealDB's command line and server, as SurrealDB's own binary starts it, with
//! the community edition's parts.

// The optimised build computes the layout of SurrealDB's deeply nested async expression
// evaluator here, past the default limit of 128.
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
