//! Integration tests: the real server on port 0, real HTTP and WebSocket clients.

mod admin;
mod auth;
mod changes;
mod chat;
mod files;
mod helpers;
mod hostile;
mod http;
mod interleave;
mod mentions;
mod profile;
mod rooms;
mod search;
mod search_corpus;
mod store;
mod ws;
