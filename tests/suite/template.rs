//! `template.yaml`, `functions/` and the route table stay in step: every route has its own
//! function binary and its own `AWS::Serverless::Function` with the route's method and paths,
//! built by cargo-lambda for arm64, allowed exactly the sends it makes.

use std::collections::BTreeSet;

use latchkey_core::routes::{self, Sends};
use serde_yaml_ng::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub struct Template(Value);

/// `magento-admin-token` → `MagentoAdminTokenFunction`.
pub fn logical_id(route: &str) -> String {
    let mut id: String = route
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

/// A tagged YAML node (`!Ref x`, `!GetAtt a.b`, `!Sub ...`) without its tag.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match untag(v) {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

impl Template {
    pub fn load() -> Self {
        let text = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
        Self(serde_yaml_ng::from_str(&text).expect("template.yaml is YAML"))
    }

    fn resources(&self) -> &serde_yaml_ng::Mapping {
        self.0["Resources"].as_mapping().expect("Resources")
    }

    pub fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
    }

    /// Policy statements of a function.
    fn statements(&self, id: &str) -> Vec<&Value> {
        let mut out = Vec::new();
        if let Some(policies) = self.resource(id)["Properties"]["Policies"].as_sequence() {
            for policy in policies {
                if let Some(statements) = policy["Statement"].as_sequence() {
                    out.extend(statements);
                }
            }
        }
        out
    }

    /// Actions granted on the table (`dynamodb:*` actions) to a function.
    pub fn table_actions(&self, id: &str) -> BTreeSet<String> {
        self.actions(id)
            .into_iter()
            .filter(|a| a.starts_with("dynamodb:"))
            .collect()
    }

    pub fn actions(&self, id: &str) -> BTreeSet<String> {
        self.statements(id)
            .iter()
            .flat_map(|s| strings(&s["Action"]))
            .collect()
    }
}

#[test]
fn every_route_has_its_function_binary() {
    let manifest = std::fs::read_to_string(format!("{ROOT}/functions/Cargo.toml"))
        .expect("functions/Cargo.toml");
    for route in routes::all() {
        let main = format!("{ROOT}/functions/{}/main.rs", route.name);
        let source = std::fs::read_to_string(&main).unwrap_or_else(|_| {
            panic!(
                "route {} has no functions/{}/main.rs",
                route.name, route.name
            )
        });
        assert!(
            source.contains(&format!("latchkey_aws::lambda::main(\"{}\")", route.name)),
            "{main} must serve its own route"
        );
        assert!(
            manifest.contains(&format!(
                "name = \"{0}\"\npath = \"{0}/main.rs\"\ntest = false\nbench = false\n",
                route.name
            )),
            "functions/Cargo.toml declares no binary {} (with `test = false` and \
             `bench = false`: no test harness linking the SDK once more)",
            route.name
        );
    }
    let dirs = std::fs::read_dir(format!("{ROOT}/functions"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(
        dirs,
        routes::all().count() + latchkey_aws::stream::FUNCTIONS.len(),
        "a function without a route"
    );
    for name in latchkey_aws::stream::FUNCTIONS {
        assert!(
            manifest.contains(&format!(
                "name = \"{name}\"\npath = \"{name}/main.rs\"\ntest = false\nbench = false\n"
            )),
            "functions/Cargo.toml declares no binary {name}"
        );
    }
}

#[test]
fn every_route_has_its_function_in_the_template() {
    let t = Template::load();
    let functions: Vec<_> = t
        .resources()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, _)| id.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        functions.len(),
        routes::all().count() + latchkey_aws::stream::FUNCTIONS.len(),
        "one function per route, and the stream functions, no more"
    );
    let globals = &t.0["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(strings(&globals["Architectures"]), ["arm64"]);
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(globals["CodeUri"].as_str(), Some("functions"));

    for route in routes::all() {
        let id = logical_id(route.name);
        let f = t.resource(&id);
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        assert_eq!(
            f["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(route.name),
            "{id} builds its own binary"
        );
        let events = f["Properties"]["Events"].as_mapping().expect("Events");
        let mut declared = BTreeSet::new();
        for (_, event) in events {
            assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{id}");
            let p = &event["Properties"];
            assert_eq!(p["Method"].as_str(), Some(route.method.as_str()), "{id}");
            declared.insert(p["Path"].as_str().expect("Path").to_owned());
        }
        let wanted: BTreeSet<String> = route.paths.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            declared, wanted,
            "{id} must serve exactly its route's paths"
        );

        let actions = t.actions(&id);
        assert_eq!(
            actions.contains("ses:SendEmail"),
            matches!(route.sends, Sends::Email | Sends::EmailAndSms),
            "{id}: only functions that send mail may use SES"
        );
        assert_eq!(
            actions.contains("sns:Publish"),
            matches!(route.sends, Sends::Sms | Sends::EmailAndSms),
            "{id}: only functions that send SMS may use SNS"
        );
        let writes = [
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ];
        assert_eq!(
            writes.iter().any(|w| actions.contains(*w)),
            route.writes,
            "{id}: table writes must match the route's `writes`"
        );
    }
}

#[test]
fn the_table_has_ttl_stream_and_point_in_time_recovery() {
    let t = Template::load();
    let table = t.resource("Table");
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        p["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some("expires_at")
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    // The stream carries keys only: the link mailer reads the mail request by its key, and no
    // consumer of the stream ever sees a password hash or a sealed secret.
    assert_eq!(
        p["StreamSpecification"]["StreamViewType"].as_str(),
        Some("KEYS_ONLY")
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
}

/// One region (infra/REGIONS.md): replication would break every conditional write latchkey's
/// rules rest on, so the template never declares a global table or replicas.
#[test]
fn the_table_is_single_region() {
    let t = Template::load();
    for (id, resource) in t.resources() {
        assert_ne!(
            resource["Type"].as_str(),
            Some("AWS::DynamoDB::GlobalTable"),
            "{id:?}: global tables break single use, budgets and revocation (infra/REGIONS.md)"
        );
    }
    let p = &t.resource("Table")["Properties"];
    assert!(p["Replicas"].is_null(), "no replicas (infra/REGIONS.md)");
}

#[test]
fn the_link_mailer_takes_only_mail_requests_from_the_stream_and_reports_failures() {
    let t = Template::load();
    let id = logical_id("link-mailer");
    let f = t.resource(&id);
    assert_eq!(
        f["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("link-mailer")
    );
    let events = &f["Properties"]["Events"];
    let stream = &events["TableStream"];
    assert_eq!(stream["Type"].as_str(), Some("DynamoDB"));
    let p = &stream["Properties"];
    assert_eq!(
        strings(&p["FunctionResponseTypes"]),
        ["ReportBatchItemFailures"]
    );
    assert!(p["MaximumRetryAttempts"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(
        p["DestinationConfig"]["OnFailure"]["Type"].as_str(),
        Some("SQS")
    );
    // The filter passes inserts of mail requests, nothing else: a profile (with its password
    // hash) never reaches the mailer.
    let filters = p["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("a filter");
    assert_eq!(filters.len(), 1);
    let pattern: serde_json::Value =
        serde_json::from_str(filters[0]["Pattern"].as_str().unwrap()).unwrap();
    assert_eq!(pattern["eventName"], serde_json::json!(["INSERT"]));
    let prefix = pattern["dynamodb"]["Keys"]["pk"]["S"][0]["prefix"]
        .as_str()
        .unwrap();
    assert_eq!(prefix, latchkey_core::records::login_link::MAIL_PK_PREFIX);
    assert_eq!(
        pattern["dynamodb"]["Keys"]["sk"]["S"],
        serde_json::json!(["REQUEST"])
    );
    assert_eq!(events["Requests"]["Type"].as_str(), Some("SQS"));
    assert_eq!(
        strings(&events["Requests"]["Properties"]["FunctionResponseTypes"]),
        ["ReportBatchItemFailures"]
    );
    assert_eq!(
        events["StorefrontEvents"]["Type"].as_str(),
        Some("EventBridgeRule")
    );
    assert!(t.resource("LinkMailerDeadLetters")["Type"].as_str() == Some("AWS::SQS::Queue"));
    let actions = t.actions(&id);
    assert!(actions.contains("ses:SendEmail"));
    assert!(!actions.contains("sns:Publish"));
    assert!(!actions.contains("dynamodb:Scan") && !actions.contains("dynamodb:Query"));
}
