//! The Magento flow on DynamoDB (through `moto_server`): every route, its DynamoDB calls per
//! request against the budget table in `infra/TABLE.md`, and the table actions it needs
//! against its least-privilege policy in `template.yaml`. The walk itself is
//! [`latchkey_tests::walk`], which the `flows` benchmark runs on the embedded store too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use latchkey_aws::dynamodb::DynamoStore;
use latchkey_core::routes;
use latchkey_tests::harness::{Backend, Cost, T0, TestApp};
use latchkey_tests::stores::{dynamodb_table, namespace};
use latchkey_tests::walk::{budget_rows, documented_rows, walk};
use serde_json::json;

use crate::template::{self, Template};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_on_dynamodb_within_its_call_budget_and_its_policy() {
    let w = walk(Backend::Dynamodb, Cost::Cheap).await;

    // Every route was walked.
    let walked: BTreeSet<&str> = w.measured.iter().map(|m| m.route).collect();
    for route in routes::all() {
        assert!(
            walked.contains(route.name),
            "the walk misses {}",
            route.name
        );
    }

    // DynamoDB calls per request are exactly what infra/TABLE.md documents.
    let rows = budget_rows(&w.measured);
    // `LATCHKEY_WALK_DUMP=<file>` writes what was measured (the rows and each route's table
    // actions), to update infra/TABLE.md and template.yaml from after a deliberate change.
    if let Ok(path) = std::env::var("LATCHKEY_WALK_DUMP") {
        let actions: BTreeMap<&str, Vec<&str>> = w
            .actions
            .iter()
            .map(|(route, a)| {
                let mut a: Vec<&str> = a.iter().copied().collect();
                a.push("dynamodb:GetItem");
                a.sort_unstable();
                a.dedup();
                (*route, a)
            })
            .collect();
        let dump = json!({ "rows": rows, "actions": actions });
        std::fs::write(path, serde_json::to_string_pretty(&dump).unwrap()).unwrap();
    }
    let documented = documented_rows();
    assert_eq!(
        rows,
        documented,
        "DynamoDB calls per request changed; measured:\n{}",
        rows.join("\n")
    );

    // An unknown login costs the store what a wrong password does: the number of calls does
    // not tell an attacker which usernames exist.
    let calls = |scenario: &str| {
        w.measured
            .iter()
            .find(|m| m.route == "magento-admin-token" && m.scenario == scenario)
            .map(|m| m.calls)
    };
    assert_eq!(calls("unknown user"), calls("wrong password"));
    assert!(calls("unknown user").is_some());

    // The link was emailed once, through the mailer.
    assert_eq!(
        w.t.outbox
            .emails()
            .iter()
            .filter(|e| e.subject.starts_with("Your sign-in link"))
            .count(),
        1
    );
    // Asking for a link costs the store the same for an unknown email as for a customer's.
    let send = |scenario: &str| {
        w.measured
            .iter()
            .find(|m| m.route == "magic-link-send" && m.scenario == scenario)
            .map(|m| m.calls)
    };
    assert_eq!(send("unknown email"), send("customer"));

    // Each function's table actions in template.yaml are exactly what its route needed.
    let template = Template::load();
    let names = routes::all()
        .map(|r| r.name)
        .chain(latchkey_aws::stream::FUNCTIONS.iter().copied());
    for name in names {
        let mut needed: BTreeSet<String> = w
            .actions
            .get(name)
            .map(|a| a.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        // The warm-up read every function makes in its init (`DynamoStore::ping`).
        needed.insert("dynamodb:GetItem".into());
        let granted = template.table_actions(&template::logical_id(name));
        assert_eq!(
            granted, needed,
            "{name}: the template's DynamoDB actions differ from what it uses",
        );
    }
}

/// DynamoDB (JSON 1.0) throttling, and an empty `GetItem` answer.
fn dynamodb_answers() -> (String, String) {
    use latchkey_tests::fake_service::answer;
    (
        answer(
            "400 Bad Request",
            "content-type: application/x-amz-json-1.0\r\n",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ),
        answer(
            "200 OK",
            "content-type: application/x-amz-json-1.0\r\n",
            "{}",
        ),
    )
}

#[tokio::test]
async fn throttled_dynamodb_is_retried_then_reported_busy_after_bounded_attempts() {
    use latchkey_aws::clients::MAX_ATTEMPTS;
    use latchkey_core::store::{Key, Store, StoreError};
    use latchkey_tests::fake_service::ThrottlingService;
    use latchkey_tests::stores::aws_clients_at;

    let key = Key::new("USER#1", "PROFILE");
    let service = ThrottlingService::start(2, dynamodb_answers()).await;
    let store = DynamoStore::new(aws_clients_at(&service.url).await.dynamodb, "latchkey");
    assert_eq!(store.get(&key, T0).await.unwrap(), None);
    let bodies = service.bodies();
    assert_eq!(bodies.len(), 3, "two throttled attempts, then the answer");
    assert!(bodies.iter().all(|b| b == &bodies[0]));

    let service = ThrottlingService::start(usize::MAX, dynamodb_answers()).await;
    let store = DynamoStore::new(aws_clients_at(&service.url).await.dynamodb, "latchkey");
    let err = store.get(&key, T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert_eq!(service.bodies().len(), MAX_ATTEMPTS as usize);
}

/// The table's stream carries keys only (issue 13): a profile change — an authenticator set up,
/// a password changed — hands a consumer of the stream, read here by boto3 (a client that
/// shares no code with latchkey), the item's key and nothing of its password hash or sealed
/// secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_change_hands_no_secret_to_the_stream() {
    use latchkey_core::crypto::SecretString;
    use latchkey_core::identity::accounts;
    let table = format!("latchkey-stream-{}", namespace());
    let t = TestApp::with(Arc::new(dynamodb_table(&table).await), &[]);
    let (user, _) = t
        .add_admin_with_totp("streamed", "correct horse battery")
        .await;
    accounts::set_password(
        t.db(),
        &t.app.hasher,
        t.app.rng.as_ref(),
        user.id,
        &SecretString::new("another horse battery".into()),
        "test",
    )
    .await
    .unwrap();
    let script = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
arn = boto3.client("dynamodb", **kw).describe_table(TableName=sys.argv[2])["Table"]["LatestStreamArn"]
streams = boto3.client("dynamodbstreams", **kw)
records = []
for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records += streams.get_records(ShardIterator=it, Limit=1000)["Records"]
print(json.dumps(records, default=str))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &latchkey_tests::stores::aws_endpoint(),
            &table,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let records: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let profile = format!("USER#{}", user.id);
    let of_profile: Vec<_> = records
        .iter()
        .filter(|r| r["dynamodb"]["Keys"]["pk"]["S"] == profile.as_str())
        .collect();
    assert!(
        of_profile.iter().any(|r| r["eventName"] == "MODIFY"),
        "the changes reached the stream: {text}"
    );
    for r in &records {
        let view = &r["dynamodb"];
        assert_eq!(view["StreamViewType"], "KEYS_ONLY", "{r}");
        assert!(
            view.get("NewImage").is_none() && view.get("OldImage").is_none(),
            "{r}"
        );
    }
    for secret in ["password_hash", "$argon2id", "totp_secret"] {
        assert!(!text.contains(secret), "{secret} in the stream: {text}");
    }
}
