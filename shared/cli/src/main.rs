//! `latchkey`: the local server and the admin commands.
fn main() {}
