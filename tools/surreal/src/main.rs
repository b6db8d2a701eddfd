//! `surreal`: SurrealDB's command line and server, as SurrealDB's own binary starts it, with
//! the community edition's parts.

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
