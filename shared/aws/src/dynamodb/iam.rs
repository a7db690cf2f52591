//! The IAM actions each store operation needs on the table, for least-privilege policies
//! (`template.yaml`; a test derives each function's policy from the operations it was seen to
//! make).

pub const GET: &[&str] = &["dynamodb:GetItem"];
pub const GET_MANY: &[&str] = &["dynamodb:BatchGetItem"];
pub const PUT: &[&str] = &["dynamodb:PutItem"];
/// `UpdateItem`, plus the conditional `DeleteItem` of an expired item in the way.
pub const UPDATE: &[&str] = &["dynamodb:UpdateItem", "dynamodb:DeleteItem"];
pub const DELETE: &[&str] = &["dynamodb:DeleteItem"];
pub const QUERY: &[&str] = &["dynamodb:Query"];
pub const SCAN: &[&str] = &["dynamodb:Scan"];
/// Transactions are authorised per item: these plus the actions of their ops.
pub const TX_PUT: &[&str] = &["dynamodb:PutItem"];
/// An update in a transaction, plus the conditional `DeleteItem` of an expired item in the way.
pub const TX_UPDATE: &[&str] = &["dynamodb:UpdateItem", "dynamodb:DeleteItem"];
pub const TX_DELETE: &[&str] = &["dynamodb:DeleteItem"];
pub const TX_CHECK: &[&str] = &["dynamodb:ConditionCheckItem"];
