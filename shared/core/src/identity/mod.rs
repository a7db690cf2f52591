//! Users, their factors and credentials, and the sign-in rules every dialect shares.

pub mod users;
