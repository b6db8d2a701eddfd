//! Integration tests: the real server on port 0, real HTTP and WebSocket clients.

mod auth;
mod helpers;
mod http;
mod store;
mod ws;
