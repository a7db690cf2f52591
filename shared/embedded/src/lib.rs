//! Embedded adapters: the SQLite store and the local outbox.
