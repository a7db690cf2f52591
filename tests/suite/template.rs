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

    /// Logical ids of every resource of `kind`.
    fn of_type(&self, kind: &str) -> Vec<String> {
        self.resources()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .map(|(id, _)| id.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn parameter(&self, name: &str) -> &Value {
        let p = &self.0["Parameters"][name];
        assert!(p.is_mapping(), "template.yaml has no parameter {name}");
        p
    }

    /// A parameter's default as text (`65536`, `on`, `` for an empty string).
    fn default_of(&self, name: &str) -> String {
        match &self.parameter(name)["Default"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("parameter {name} has no plain default: {other:?}"),
        }
    }

    fn condition(&self, name: &str) -> &Value {
        let c = &self.0["Conditions"][name];
        assert!(!c.is_null(), "template.yaml has no condition {name}");
        c
    }
}

/// The function (`If`, `Ref`, `Sub`, ...) and argument of a tagged node.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        _ => None,
    }
}

/// The name a `!Ref` names.
fn ref_of(v: &Value) -> Option<&str> {
    match intrinsic(v) {
        Some((f, arg)) if f == "Ref" => arg.as_str(),
        _ => None,
    }
}

/// `!If [cond, then, else]` as its three parts.
fn if_of(v: &Value) -> Option<(&str, &Value, &Value)> {
    match intrinsic(v) {
        Some((f, Value::Sequence(parts))) if f == "If" && parts.len() == 3 => {
            Some((parts[0].as_str()?, &parts[1], &parts[2]))
        }
        _ => None,
    }
}

/// `!Not [!Equals [!Ref param, value]]`: the parameter and the value it must not equal.
fn not_equals(v: &Value) -> Option<(&str, String)> {
    let (f, arg) = intrinsic(v)?;
    if f != "Not" {
        return None;
    }
    let (f, arg) = intrinsic(arg.as_sequence()?.first()?)?;
    let pair = arg.as_sequence().filter(|_| f == "Equals")?;
    let value = match pair.get(1)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((ref_of(pair.first()?)?, value))
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

// ------------------------------------------------------------------- production (issue 13)

/// Classes of functions, each with its own reserved concurrency (and, for routes, its own
/// throttling limits): what one class does cannot starve another.
const CLASSES: [&str; 4] = ["SignIn", "TokenCheck", "Admin", "Mailer"];

/// The class of a function: its `ReservedConcurrentExecutions` is `!If [Has<C>Reserve, !Ref
/// <C>ReservedConcurrency, !Ref AWS::NoValue]`.
fn class_of(t: &Template, id: &str) -> &'static str {
    let reserved = &t.resource(id)["Properties"]["ReservedConcurrentExecutions"];
    let (condition, then, otherwise) =
        if_of(reserved).unwrap_or_else(|| panic!("{id}: reserved concurrency by class (!If)"));
    let class = CLASSES
        .into_iter()
        .find(|c| condition == format!("Has{c}Reserve"))
        .unwrap_or_else(|| panic!("{id}: {condition} is no class's condition"));
    assert_eq!(
        ref_of(then),
        Some(format!("{class}ReservedConcurrency").as_str()),
        "{id}"
    );
    assert_eq!(
        ref_of(otherwise),
        Some("AWS::NoValue"),
        "{id}: 0 = unreserved"
    );
    class
}

#[test]
fn every_function_reserves_concurrency_by_its_class() {
    let t = Template::load();
    assert!(
        t.0["Globals"]["Function"]["ReservedConcurrentExecutions"].is_null(),
        "reserved concurrency is per class, never one value for all"
    );
    for class in CLASSES {
        let parameter = format!("{class}ReservedConcurrency");
        assert_eq!(
            t.default_of(&parameter),
            "0",
            "{parameter}: unreserved by default"
        );
        assert_eq!(
            not_equals(t.condition(&format!("Has{class}Reserve"))),
            Some((parameter.as_str(), "0".to_owned())),
            "Has{class}Reserve: reserved only when the parameter is not 0"
        );
    }
    let mut counts = std::collections::BTreeMap::new();
    for id in t.of_type("AWS::Serverless::Function") {
        let class = class_of(&t, &id);
        *counts.entry(class).or_insert(0usize) += 1;
        let actions = t.actions(&id);
        if actions.contains("ses:SendEmail") || actions.contains("sns:Publish") {
            assert!(
                class == "SignIn" || class == "Admin" || class == "Mailer",
                "{id} sends codes or links: not a cheap token check"
            );
        }
    }
    for name in latchkey_aws::stream::FUNCTIONS {
        assert_eq!(class_of(&t, &logical_id(name)), "Mailer", "{name}");
    }
    // The routes the classes are named for.
    for (route, class) in [
        ("magento-customer-token", "SignIn"),
        ("glue-access-tokens", "SignIn"),
        ("wizard-signin", "SignIn"),
        ("glue-mfa-trigger", "SignIn"),
        ("magic-link-send", "SignIn"),
        ("magento-customers-me", "TokenCheck"),
        ("wizard-user", "TokenCheck"),
        ("glue-refresh-tokens", "TokenCheck"),
        ("jwks", "TokenCheck"),
        ("magento-admin-token", "Admin"),
        ("magento-integration-create", "Admin"),
        ("glue-token", "Admin"),
    ] {
        assert_eq!(class_of(&t, &logical_id(route)), class, "{route}");
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        routes::all().count() + latchkey_aws::stream::FUNCTIONS.len()
    );
    assert!(CLASSES.iter().all(|c| counts.contains_key(c)), "{counts:?}");
}

#[test]
fn routes_are_throttled_by_their_class_for_the_stated_peak() {
    let t = Template::load();
    let api = &t.resource("HttpApi")["Properties"];
    let default = &api["DefaultRouteSettings"];
    assert_eq!(
        ref_of(&default["ThrottlingRateLimit"]),
        Some("ThrottlingRateLimit")
    );
    assert_eq!(
        ref_of(&default["ThrottlingBurstLimit"]),
        Some("ThrottlingBurstLimit")
    );
    // Sized for 5,000 sign-ins/s and 50,000 token checks/s (README: Capacity for a sale-day peak).
    assert_eq!(t.default_of("SignInRateLimit"), "5000");
    assert_eq!(t.default_of("TokenCheckRateLimit"), "50000");
    for p in [
        "ThrottlingBurstLimit",
        "SignInBurstLimit",
        "TokenCheckBurstLimit",
    ] {
        assert!(
            t.default_of(p).parse::<u32>().unwrap() <= 5000,
            "{p}: the account's burst quota"
        );
    }

    let settings = api["RouteSettings"].as_mapping().expect("RouteSettings");
    let mut wanted = BTreeSet::new();
    for route in routes::all() {
        let class = class_of(&t, &logical_id(route.name));
        for path in route.paths {
            let key = format!("{} {path}", route.method);
            let entry = settings.get(key.as_str());
            if class == "Admin" {
                assert!(
                    entry.is_none(),
                    "{key}: admin routes take the default limits"
                );
                continue;
            }
            let entry = entry.unwrap_or_else(|| panic!("{key} has no RouteSettings entry"));
            assert_eq!(
                ref_of(&entry["ThrottlingRateLimit"]),
                Some(format!("{class}RateLimit").as_str()),
                "{key}"
            );
            assert_eq!(
                ref_of(&entry["ThrottlingBurstLimit"]),
                Some(format!("{class}BurstLimit").as_str()),
                "{key}"
            );
            wanted.insert(key);
        }
    }
    let declared: BTreeSet<String> = settings
        .keys()
        .map(|k| k.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        declared, wanted,
        "RouteSettings name only routes that exist"
    );
}

#[test]
fn every_function_and_the_api_log_to_groups_with_retention() {
    let t = Template::load();
    assert_eq!(t.default_of("LogRetentionDays"), "30");
    for id in t.of_type("AWS::Logs::LogGroup") {
        let p = &t.resource(&id)["Properties"];
        assert_eq!(
            ref_of(&p["RetentionInDays"]),
            Some("LogRetentionDays"),
            "{id}"
        );
        let name = intrinsic(&p["LogGroupName"]).map(|(_, v)| v.as_str().unwrap_or_default());
        assert!(
            name.is_some_and(|n| !n.starts_with("/aws/") && !n.starts_with("aws/")),
            "{id}: Lambda reserves /aws/ names"
        );
    }
    let logging = &t.0["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(logging["SystemLogLevel"].as_str(), Some("WARN"));
    let group = ref_of(&logging["LogGroup"]).expect("a log group for every function");
    assert_eq!(
        t.resource(group)["Type"].as_str(),
        Some("AWS::Logs::LogGroup")
    );
    for id in t.of_type("AWS::Serverless::Function") {
        assert!(
            t.resource(&id)["Properties"]["LoggingConfig"].is_null(),
            "{id} logs where every function does"
        );
    }

    let access = &t.resource("HttpApi")["Properties"]["AccessLogSettings"];
    let (f, arg) = intrinsic(&access["DestinationArn"]).expect("GetAtt");
    assert_eq!(f, "GetAtt");
    let group = arg.as_str().unwrap().trim_end_matches(".Arn");
    assert_eq!(
        t.resource(group)["Type"].as_str(),
        Some("AWS::Logs::LogGroup")
    );
    let format: serde_json::Value =
        serde_json::from_str(access["Format"].as_str().unwrap()).expect("a JSON access log");
    for key in ["requestId", "ip", "routeKey", "status", "integrationError"] {
        assert!(format.get(key).is_some(), "access log field {key}");
    }
    // Paths carry login-link and refresh tokens: the log names the route, never the path.
    for value in format.as_object().unwrap().values() {
        let value = value.as_str().unwrap();
        assert!(
            !value.contains("path") && !value.contains("querystring"),
            "{value} would log a token"
        );
    }
}

#[test]
fn alarms_cover_operations_and_notify_the_topic_only_when_given() {
    let t = Template::load();
    assert_eq!(t.default_of("AlarmTopicArn"), "");
    assert_eq!(
        not_equals(t.condition("HasAlarms")),
        Some(("AlarmTopicArn", String::new()))
    );
    let mut watched = BTreeSet::new();
    let alarms = t.of_type("AWS::CloudWatch::Alarm");
    for id in &alarms {
        let alarm = t.resource(id);
        assert_eq!(alarm["Condition"].as_str(), Some("HasAlarms"), "{id}");
        let p = &alarm["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            let targets = p[actions].as_sequence().expect(actions);
            assert_eq!(targets.len(), 1, "{id}");
            assert_eq!(
                ref_of(&targets[0]),
                Some("AlarmTopicArn"),
                "{id}: {actions}"
            );
        }
        let mut metrics = vec![(&p["Namespace"], &p["MetricName"])];
        for query in p["Metrics"].as_sequence().into_iter().flatten() {
            let m = &query["MetricStat"]["Metric"];
            metrics.push((&m["Namespace"], &m["MetricName"]));
            // A Metrics Insights query: SELECT SUM(<metric>) FROM SCHEMA("<namespace>", ...
            if let Some((_, sql)) = intrinsic(&query["Expression"]) {
                let sql = sql.as_str().unwrap_or_default();
                let name = sql.split(['(', ')']).nth(1).unwrap_or_default();
                let namespace = sql.split('"').nth(1).unwrap_or_default();
                watched.insert(format!("{namespace} {name}"));
            }
        }
        for (namespace, name) in metrics {
            if let (Some(namespace), Some(name)) = (namespace.as_str(), name.as_str()) {
                watched.insert(format!("{namespace} {name}"));
            }
        }
    }
    for wanted in [
        "AWS/Lambda Errors",
        "AWS/Lambda Throttles",
        "AWS/ApiGateway 5xx",
        "AWS/ApiGateway 4xx",
        "AWS/DynamoDB ReadThrottleEvents",
        "AWS/DynamoDB WriteThrottleEvents",
        "AWS/DynamoDB SystemErrors",
        "AWS/SES Reputation.BounceRate",
        "AWS/SES Reputation.ComplaintRate",
        "AWS/SNS NumberOfNotificationsFailed",
        "AWS/SNS SMSMonthToDateSpentUSD",
        "AWS/SQS ApproximateNumberOfMessagesVisible",
    ] {
        assert!(
            watched.contains(wanted),
            "no alarm watches {wanted}: {watched:?}"
        );
    }
}

#[test]
fn the_table_is_protected_and_its_capacity_is_parameters() {
    let t = Template::load();
    let table = t.resource("Table");
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    let p = &table["Properties"];
    assert_eq!(p["DeletionProtectionEnabled"].as_bool(), Some(true));
    for (property, condition, fields) in [
        (
            "OnDemandThroughput",
            "HasTableMax",
            [
                ("MaxReadRequestUnits", "TableMaxReadUnits"),
                ("MaxWriteRequestUnits", "TableMaxWriteUnits"),
            ],
        ),
        (
            "WarmThroughput",
            "HasTableWarm",
            [
                ("ReadUnitsPerSecond", "TableWarmReadUnits"),
                ("WriteUnitsPerSecond", "TableWarmWriteUnits"),
            ],
        ),
    ] {
        let (cond, set, unset) = if_of(&p[property]).unwrap_or_else(|| panic!("{property}"));
        assert_eq!(cond, condition);
        assert_eq!(
            ref_of(unset),
            Some("AWS::NoValue"),
            "{property}: none by default"
        );
        for (field, parameter) in fields {
            let (_, value, _) = if_of(&set[field]).unwrap_or_else(|| panic!("{field}"));
            assert_eq!(ref_of(value), Some(parameter), "{field}");
            assert_eq!(t.default_of(parameter), "0", "{parameter}: off by default");
        }
    }
}

#[test]
fn gradual_deployment_is_a_parameter_and_off_by_default() {
    let t = Template::load();
    let globals = &t.0["Globals"]["Function"];
    assert_eq!(globals["AutoPublishAlias"].as_str(), Some("live"));
    assert_eq!(globals["VersionDeletionPolicy"].as_str(), Some("Delete"));
    let preference = &globals["DeploymentPreference"];
    assert_eq!(ref_of(&preference["Enabled"]), Some("GradualDeployment"));
    assert_eq!(ref_of(&preference["Type"]), Some("DeploymentType"));
    assert_eq!(t.default_of("GradualDeployment"), "false");
    assert!(t.default_of("DeploymentType").starts_with("Canary"));
    // Rolls back on the alarms, when there are alarms.
    let (condition, alarms, _) = if_of(&preference["Alarms"]).expect("alarms by condition");
    assert_eq!(condition, "HasAlarms");
    for alarm in alarms.as_sequence().unwrap() {
        let id = ref_of(alarm).unwrap();
        assert_eq!(
            t.resource(id)["Type"].as_str(),
            Some("AWS::CloudWatch::Alarm")
        );
    }
    // A changed setting publishes a version as changed code does, or the alias would keep
    // serving the old one.
    for id in t.of_type("AWS::Serverless::Function") {
        assert_eq!(
            t.resource(&id)["Properties"]["AutoPublishAliasAllProperties"].as_bool(),
            Some(true),
            "{id}"
        );
    }
}

#[test]
fn the_edge_is_optional_and_latchkey_trusts_cloudfront_only_behind_it() {
    let t = Template::load();
    assert_eq!(t.default_of("EdgeEnabled"), "false");
    let use_edge = intrinsic(t.condition("UseEdge")).expect("UseEdge");
    assert_eq!(use_edge.0, "Equals");
    assert_eq!(ref_of(&use_edge.1[0]), Some("EdgeEnabled"));
    assert_eq!(use_edge.1[1].as_str(), Some("true"));

    let cdn = t.resource("EdgeDistribution");
    assert_eq!(cdn["Condition"].as_str(), Some("UseEdge"));
    let config = &cdn["Properties"]["DistributionConfig"];
    let (_, own, given) = if_of(&config["WebACLId"]).expect("a web ACL, always");
    assert_eq!(
        intrinsic(own).map(|(_, v)| v.as_str()),
        Some(Some("EdgeWebAcl.Arn"))
    );
    assert_eq!(ref_of(given), Some("EdgeWebAclArn"));
    let origin = &config["Origins"][0];
    let (_, domain) = intrinsic(&origin["DomainName"]).expect("!Sub");
    assert!(
        domain
            .as_str()
            .unwrap()
            .starts_with("${HttpApi}.execute-api.")
    );
    let behavior = &config["DefaultCacheBehavior"];
    // AWS's managed CachingDisabled: every answer comes from latchkey.
    assert_eq!(
        behavior["CachePolicyId"].as_str(),
        Some("4135ea2d-6df8-44a3-9df3-4b5a84be39ad")
    );
    assert_eq!(strings(&behavior["AllowedMethods"]).len(), 7);

    let acl = t.resource("EdgeWebAcl");
    assert_eq!(acl["Properties"]["Scope"].as_str(), Some("CLOUDFRONT"));
    let mut rate_rules = 0;
    let mut groups = BTreeSet::new();
    for rule in acl["Properties"]["Rules"].as_sequence().unwrap() {
        // Optional rule groups are `!If [cond, rule, !Ref AWS::NoValue]`.
        let rule = if_of(rule).map_or(rule, |(_, rule, _)| rule);
        let statement = &rule["Statement"];
        if statement["RateBasedStatement"].is_mapping() {
            assert_eq!(
                statement["RateBasedStatement"]["AggregateKeyType"].as_str(),
                Some("IP")
            );
            rate_rules += 1;
        }
        if let Some(name) = statement["ManagedRuleGroupStatement"]["Name"].as_str() {
            groups.insert(name.to_owned());
        }
    }
    assert!(rate_rules >= 2, "a per-IP rate rule, and one for sign-ins");
    for group in [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesBotControlRuleSet",
        "AWSManagedRulesATPRuleSet",
    ] {
        assert!(groups.contains(group), "{group}");
    }

    // Behind CloudFront the client address is read through CloudFront's ranges only; without
    // it, the code's default (the peer is the client), unless the operator names proxies.
    let env = &t.0["Globals"]["Function"]["Environment"]["Variables"];
    let (condition, chosen, otherwise) =
        if_of(&env["LATCHKEY_TRUSTED_PROXIES"]).expect("trusted proxies by condition");
    assert_eq!(condition, "HasTrustedProxies");
    assert_eq!(ref_of(chosen), Some("TrustedProxies"));
    let (condition, edge, direct) = if_of(otherwise).expect("by the edge");
    assert_eq!(condition, "UseEdge");
    assert_eq!(edge.as_str(), Some("cloudfront"));
    let none = direct.as_str().unwrap();
    assert_eq!(Some(none), setting_default("LATCHKEY_TRUSTED_PROXIES"));
    let behind = latchkey_core::forwarded::TrustedProxies::parse("cloudfront").unwrap();
    assert!(
        behind.trusts("130.176.0.1".parse().unwrap()),
        "CloudFront origin-facing"
    );
    assert!(!behind.trusts("203.0.113.9".parse().unwrap()));

    // A custom domain, on CloudFront or on the API, only when named.
    assert_eq!(t.default_of("DomainName"), "");
    assert_eq!(
        t.resource("ApiDomain")["Condition"].as_str(),
        Some("DomainOnApi")
    );
    assert!(
        intrinsic(&config["Aliases"]).is_some(),
        "aliases only with a domain"
    );
}

fn setting_default(name: &str) -> Option<&'static str> {
    use latchkey_core::config::{DEPLOYMENT_SETTINGS, SETTINGS};
    SETTINGS
        .iter()
        .chain(DEPLOYMENT_SETTINGS)
        .find(|s| s.name == name)
        .map(|s| s.default)
}

#[test]
fn every_feature_setting_is_a_parameter_with_the_codes_default() {
    use latchkey_core::config::SETTINGS;
    let t = Template::load();
    let env = t.0["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Globals environment");
    let names: BTreeSet<&str> = env.keys().filter_map(|k| k.as_str()).collect();
    for name in &names {
        assert!(
            setting_default(name).is_some(),
            "{name} is no setting latchkey reads"
        );
    }
    // Every setting of the Glue, wizard, reCAPTCHA and trusted-proxy features can be set.
    for setting in SETTINGS {
        let feature = ["LATCHKEY_GLUE_", "LATCHKEY_WIZARD_", "LATCHKEY_RECAPTCHA"]
            .iter()
            .any(|p| setting.name.starts_with(p))
            || ["LATCHKEY_TRUSTED_PROXIES", "LATCHKEY_SMS_GLOBAL_PER_HOUR"].contains(&setting.name);
        if feature {
            assert!(
                names.contains(setting.name),
                "{} is no stack parameter",
                setting.name
            );
        }
    }
    // Parameters default to the code's defaults ("(unset)" is an empty parameter), but for the
    // deployment's own: production, the stack's table and key parameter, and what has none.
    let deployment = [
        "LATCHKEY_ENV",
        "LATCHKEY_PUBLIC_URL",
        "LATCHKEY_MAIL_FROM",
        "LATCHKEY_TABLE",
        "LATCHKEY_KEYS_SSM_PARAMETER",
    ];
    for (name, value) in env {
        let name = name.as_str().unwrap();
        let Some(parameter) = ref_of(value) else {
            continue;
        };
        if deployment.contains(&name) {
            continue;
        }
        let code = setting_default(name).unwrap();
        let code = if code == "(unset)" { "" } else { code };
        assert_eq!(t.default_of(parameter), code, "{parameter} ({name})");
    }
    assert_eq!(
        t.default_of("TrustedProxies"),
        setting_default("LATCHKEY_TRUSTED_PROXIES").unwrap()
    );
    assert_eq!(
        t.parameter("RecaptchaSecret")["NoEcho"].as_bool(),
        Some(true)
    );

    // Lambda allows 4 KB of environment: the defaults (with a long URL, sender and table name)
    // leave at least 1 KB for LATCHKEY_STORES and the operator's values.
    let size: usize = env
        .iter()
        .map(|(name, value)| {
            let default = ref_of(value).map(|p| &t.0["Parameters"][p]["Default"]);
            let value = match default {
                Some(Value::String(s)) => s.len(),
                Some(Value::Number(n)) => n.to_string().len(),
                _ => 64,
            };
            name.as_str().unwrap().len() + value + 6
        })
        .sum();
    assert!(size <= 3 * 1024, "{size} bytes of environment by default");
}

#[test]
fn timeouts_nest_inside_the_functions() {
    use latchkey_aws::clients::{
        DELIVERY_OPERATION_TIMEOUT, DYNAMODB_ATTEMPT_TIMEOUT, DYNAMODB_OPERATION_TIMEOUT,
    };
    let t = Template::load();
    let timeout = std::time::Duration::from_secs(
        t.0["Globals"]["Function"]["Timeout"]
            .as_u64()
            .expect("Timeout"),
    );
    // The request's deadline is the Timeout less 0.3 s (latchkey_aws::lambda): each SDK call
    // ends within it, and the HTTP API (30 s at most) outwaits the function.
    let deadline = timeout - std::time::Duration::from_millis(300);
    assert!(DYNAMODB_ATTEMPT_TIMEOUT < DYNAMODB_OPERATION_TIMEOUT);
    assert!(DYNAMODB_OPERATION_TIMEOUT * 2 < deadline);
    assert!(DELIVERY_OPERATION_TIMEOUT + DYNAMODB_OPERATION_TIMEOUT < deadline);
    assert!(timeout <= std::time::Duration::from_secs(29));
    // SQS hides a message for 6 times the mailer's timeout (AWS's advice for Lambda sources).
    let mailer = t.resource(&logical_id("link-mailer"))["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    let visibility = t.resource("LinkRequestQueue")["Properties"]["VisibilityTimeout"]
        .as_u64()
        .unwrap();
    assert!(visibility >= 6 * mailer);
}
