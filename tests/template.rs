//! The deployment template (`template.yaml`), checked for what `cfn-lint` and
//! `sam validate --lint` cannot see: that the function can never trigger itself, that its
//! IAM permissions stop at the prefixes it needs, that the log bucket admits log delivery
//! only from the source account and only under the raw prefix, and that the template
//! agrees with the code (prefix defaults, environment, the NDJSON schema, the metrics).
//!
//! The template is rendered as CloudFormation would render it for a set of parameter
//! values: conditions are evaluated, `Fn::If` picks a branch, `AWS::NoValue` disappears
//! and `Fn::Sub` substitutes parameters. A reference to a resource renders as
//! `{Name}` (`Ref`) or `{Name.Attribute}` (`Fn::GetAtt`), so checks can name what a
//! property points at. The template must use long-form intrinsics (`Fn::Sub:`, not
//! `!Sub`) so that a plain YAML parser reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use bucketlog::config::Config;
use serde_json::{Map, Value, json};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const STACK: &str = "bucketlog-test";
/// `LogBucketName` has no default: deployers must choose one.
const LOG_BUCKET: &str = "example-access-logs";

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse_template() -> Value {
    serde_norway::from_str(&repo_file("template.yaml")).unwrap_or_else(|e| {
        panic!(
            "template.yaml is not plain YAML ({e}); write intrinsics in long form \
             (`Fn::Sub:`, `Ref:`, `Fn::GetAtt:`), not as `!Sub` tags"
        )
    })
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other}"),
    }
}

/// The template rendered for one set of parameter values.
struct Stack {
    template: Value,
    params: BTreeMap<String, Value>,
}

impl Stack {
    /// The template with its parameter defaults, `LogBucketName` set, and `overrides`.
    fn new(overrides: &[(&str, &str)]) -> Self {
        let template = parse_template();
        let mut params = BTreeMap::new();
        for (name, spec) in template["Parameters"].as_object().expect("Parameters") {
            let given = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Value::String(v.to_string()))
                .or_else(|| spec.get("Default").cloned())
                .or_else(|| (name == "LogBucketName").then(|| json!(LOG_BUCKET)))
                .unwrap_or_else(|| panic!("parameter {name} has no default"));
            let value = if spec["Type"] == "CommaDelimitedList" {
                Value::Array(
                    scalar(&given)
                        .split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                )
            } else {
                given
            };
            params.insert(name.clone(), value);
        }
        for (name, _) in overrides {
            assert!(params.contains_key(*name), "no parameter {name}");
        }
        Stack { template, params }
    }

    fn param(&self, name: &str) -> String {
        scalar(&self.params[name])
    }

    fn condition(&self, name: &str) -> bool {
        let definition = self.template["Conditions"]
            .get(name)
            .unwrap_or_else(|| panic!("no condition {name}"));
        self.truth(definition)
    }

    fn truth(&self, value: &Value) -> bool {
        let (function, args) = single_entry(value).unwrap_or_else(|| panic!("condition {value}"));
        match function {
            "Condition" => self.condition(args.as_str().expect("condition name")),
            "Fn::Not" => !self.truth(&args[0]),
            "Fn::And" => args.as_array().expect("list").iter().all(|a| self.truth(a)),
            "Fn::Or" => args.as_array().expect("list").iter().any(|a| self.truth(a)),
            "Fn::Equals" => {
                let a = self.eval(&args[0]).expect("value");
                let b = self.eval(&args[1]).expect("value");
                scalar(&a) == scalar(&b)
            }
            other => panic!("unsupported condition function {other}"),
        }
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').expect("unclosed ${ in Fn::Sub");
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(value) = vars.get(name) {
                out.push_str(&scalar(&self.eval(value).expect("Fn::Sub variable")));
            } else {
                out.push_str(&scalar(&self.reference(name)));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn reference(&self, name: &str) -> Value {
        match name {
            "AWS::AccountId" => json!(ACCOUNT),
            "AWS::Region" => json!(REGION),
            "AWS::Partition" => json!("aws"),
            "AWS::StackName" => json!(STACK),
            "AWS::URLSuffix" => json!("amazonaws.com"),
            _ if self.params.contains_key(name) => self.params[name].clone(),
            _ => {
                let resource = name.split('.').next().unwrap_or(name);
                assert!(
                    self.template["Resources"].get(resource).is_some(),
                    "reference to unknown {name}"
                );
                json!(format!("{{{name}}}"))
            }
        }
    }

    /// Renders a template value; `None` is `AWS::NoValue`.
    fn eval(&self, value: &Value) -> Option<Value> {
        if let Some((function, args)) = single_entry(value)
            && (function == "Ref" || function.starts_with("Fn::"))
        {
            return self.intrinsic(function, args);
        }
        Some(match value {
            Value::Array(items) => {
                Value::Array(items.iter().filter_map(|v| self.eval(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| self.eval(v).map(|v| (k.clone(), v)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn intrinsic(&self, function: &str, args: &Value) -> Option<Value> {
        let list = |v: &Value| -> Vec<Value> {
            match self.eval(v) {
                Some(Value::Array(items)) => items,
                other => panic!("{function} expects a list, got {other:?}"),
            }
        };
        Some(match function {
            "Ref" if args == "AWS::NoValue" => return None,
            "Ref" => self.reference(args.as_str().expect("Ref name")),
            "Fn::GetAtt" => {
                let parts: Vec<String> = args
                    .as_array()
                    .expect("GetAtt list")
                    .iter()
                    .map(scalar)
                    .collect();
                self.reference(&parts.join("."))
            }
            "Fn::If" => {
                let branch = if self.condition(args[0].as_str().expect("condition name")) {
                    &args[1]
                } else {
                    &args[2]
                };
                return self.eval(branch);
            }
            "Fn::Sub" => match args {
                Value::String(text) => json!(self.sub(text, &Map::new())),
                Value::Array(pair) => json!(self.sub(
                    pair[0].as_str().expect("Fn::Sub template"),
                    pair[1].as_object().expect("Fn::Sub variables"),
                )),
                other => panic!("Fn::Sub {other}"),
            },
            "Fn::Join" => {
                let parts: Vec<String> = list(&args[1]).iter().map(scalar).collect();
                json!(parts.join(args[0].as_str().expect("literal delimiter")))
            }
            "Fn::Split" => {
                let text = scalar(&self.eval(&args[1]).expect("Fn::Split input"));
                Value::Array(
                    text.split(args[0].as_str().expect("delimiter"))
                        .map(|s| json!(s))
                        .collect(),
                )
            }
            "Fn::Select" => {
                let index: usize = scalar(&args[0]).parse().expect("index");
                list(&args[1])[index].clone()
            }
            other => panic!("unsupported intrinsic {other}"),
        })
    }

    /// A resource as deployed, or `None` when its condition leaves it out.
    fn resource(&self, name: &str) -> Option<Value> {
        let raw = self.template["Resources"]
            .get(name)
            .unwrap_or_else(|| panic!("no resource {name}"));
        if let Some(condition) = raw.get("Condition")
            && !self.condition(condition.as_str().expect("condition name"))
        {
            return None;
        }
        self.eval(raw)
    }

    fn deployed(&self, name: &str) -> Value {
        self.resource(name)
            .unwrap_or_else(|| panic!("{name} is not deployed with these parameters"))
    }

    fn resources_of_type(&self, kind: &str) -> Vec<(String, Value)> {
        self.template["Resources"]
            .as_object()
            .expect("Resources")
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .filter_map(|(name, _)| self.resource(name).map(|r| (name.clone(), r)))
            .collect()
    }

    /// `arn:aws:s3:::{log bucket}/{prefix}*`.
    fn object_arn(&self, prefix_param: &str) -> String {
        format!(
            "arn:aws:s3:::{}/{}*",
            self.param("LogBucketName"),
            self.param(prefix_param)
        )
    }

    /// The function's environment, as the function would read it.
    fn function_env(&self) -> BTreeMap<String, String> {
        self.env_of("BucketlogFunction")
    }

    /// One function's environment (`BucketlogFunction`, `CompactionFunction`).
    fn env_of(&self, function: &str) -> BTreeMap<String, String> {
        self.deployed(function)["Properties"]["Environment"]["Variables"]
            .as_object()
            .expect("Environment.Variables")
            .iter()
            .map(|(k, v)| (k.clone(), scalar(v)))
            .collect()
    }

    /// The function's configuration, parsed by the function's own code.
    fn function_config(&self) -> Config {
        self.config_of("BucketlogFunction")
    }

    /// One function's configuration, parsed by the function's own code.
    fn config_of(&self, function: &str) -> Config {
        self.try_config_of(function)
            .unwrap_or_else(|e| panic!("the template's environment is refused: {e}"))
    }

    /// The same, or the function's own refusal of its environment.
    fn try_config_of(&self, function: &str) -> Result<Config, bucketlog::config::ConfigError> {
        let mut env = self.env_of(function);
        // `Ref` on an SNS topic resolves to its ARN at deploy time.
        if let Some(topic) = env.get_mut("ALERT_TOPIC_ARN") {
            *topic = topic.replace(
                "{AlertTopic}",
                "arn:aws:sns:us-east-1:123456789012:bucketlog-alerts",
            );
        }
        // `Ref` on a DynamoDB table resolves to its name.
        if let Some(table) = env.get_mut("DETECTION_TABLE") {
            *table = table.replace("{DetectionTable}", "bucketlog-DetectionTable-ABC123");
        }
        Config::from_lookup(|name| env.get(name).cloned())
    }

    /// The template's `Rules`, checked as CloudFormation checks them before it creates
    /// or updates anything: the first assertion that fails, by rule and description.
    fn failed_rule(&self) -> Option<String> {
        let rules = self.template.get("Rules")?.as_object().expect("Rules");
        for (name, rule) in rules {
            if rule
                .get("RuleCondition")
                .is_some_and(|condition| !self.truth(condition))
            {
                continue;
            }
            for assertion in rule["Assertions"].as_array().expect("Assertions") {
                if !self.truth(&assertion["Assert"]) {
                    return Some(format!(
                        "{name}: {}",
                        scalar(&assertion["AssertDescription"])
                    ));
                }
            }
        }
        None
    }

    fn role_statements(&self) -> Vec<Value> {
        self.statements_of("FunctionRole")
    }

    /// The object ARNs of `GeoIpDb` and `AsnDb` where they are `s3://bucket/key` URIs,
    /// as the function reads them: exactly what its role may read outside the log bucket.
    fn database_objects(&self) -> Vec<String> {
        ["GeoIpDb", "AsnDb"]
            .iter()
            .filter_map(|p| self.param(p).strip_prefix("s3://").map(str::to_string))
            .map(|object| format!("arn:aws:s3:::{object}"))
            .collect()
    }

    /// Every statement of one role's inline policies.
    fn statements_of(&self, role: &str) -> Vec<Value> {
        let role = self.deployed(role);
        role["Properties"]["Policies"]
            .as_array()
            .expect("Policies")
            .iter()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn single_entry(value: &Value) -> Option<(&str, &Value)> {
    match value.as_object() {
        Some(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

/// A string or a list of strings, as IAM allows for `Action` and `Resource`.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        Value::Null => Vec::new(),
        other => vec![scalar(other)],
    }
}

/// Parameter sets that change the trigger, the prefixes or the policies.
fn scenarios() -> Vec<(&'static str, Stack)> {
    vec![
        ("defaults (SQS queue)", Stack::new(&[])),
        ("direct invocation", Stack::new(&[("UseSqsQueue", "false")])),
        (
            "custom prefixes, API metrics, source buckets",
            Stack::new(&[
                ("RawPrefix", "logs/incoming/"),
                ("CuratedPrefix", "logs/curated/"),
                ("RejectedPrefix", "logs/rejected/"),
                ("AlertsPrefix", "alerts/bucketlog/"),
                ("StatePrefix", "bucketlog-state/"),
                ("MetricsMode", "api"),
                ("SourceBuckets", "assets-prod, www.example.com"),
                ("LakePrefix", "logs/lake/"),
            ]),
        ),
        (
            "raw writers, an admin role, versioning",
            Stack::new(&[
                ("RawWriterPrincipalArns", &RAW_WRITERS.join(", ")),
                ("AdminRoleArn", ADMIN_ROLE),
                ("LogBucketVersioning", "Enabled"),
            ]),
        ),
        (
            "client databases from S3 and a layer, an ASN allowlist",
            Stack::new(&[
                ("GeoIpDb", GEO_DB_OBJECT),
                ("AsnDb", ASN_DB_LAYER),
                ("AlertAllowAsns", "16509, AS13335"),
            ]),
        ),
    ]
}

/// A City database as an S3 object, for `GeoIpDb` (not in the log bucket: nothing but
/// the tables and the dashboard may name a location there).
const GEO_DB_OBJECT: &str = "s3://geo-data-example/maxmind/GeoLite2-City.mmdb";
/// An ASN database in a Lambda layer, for `AsnDb`.
const ASN_DB_LAYER: &str = "/opt/geo/GeoLite2-ASN.mmdb";

/// Principals that copy other providers' logs in, for `RawWriterPrincipalArns`.
const RAW_WRITERS: [&str; 2] = [
    "arn:aws:iam::123456789012:role/rclone-copy",
    "arn:aws:iam::123456789012:user/sync-*",
];
/// An administrator role, for `AdminRoleArn`.
const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/log-admin";

fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[test]
fn template_is_plain_yaml_with_long_form_intrinsics() {
    let text = repo_file("template.yaml");
    for (number, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        assert!(
            !code.contains(" !") && !code.trim_start().starts_with('!'),
            "template.yaml:{}: short-form intrinsic; use the long form: {line}",
            number + 1
        );
    }
    let template = parse_template();
    assert_eq!(template["Transform"], "AWS::Serverless-2016-10-31");
}

#[test]
fn prefix_defaults_are_the_functions_defaults() {
    let stack = Stack::new(&[]);
    let defaults = Config::default();
    for (param, expected) in [
        ("RawPrefix", defaults.raw_prefix.as_str()),
        ("CuratedPrefix", defaults.curated_prefix.as_str()),
        ("RejectedPrefix", defaults.rejected_prefix.as_str()),
        ("AlertsPrefix", defaults.alerts_prefix.as_str()),
        ("StatePrefix", defaults.state_prefix.as_str()),
        ("LogLevel", defaults.log_level.as_str()),
    ] {
        assert_eq!(stack.param(param), expected, "default of {param}");
    }
    assert_eq!(stack.param("OutputCompression"), "zstd");
    assert_eq!(stack.param("MetricsNamespace"), "S3AccessLogs");
}

#[test]
fn function_environment_is_a_valid_configuration_that_matches_the_parameters() {
    for (name, stack) in scenarios() {
        assert_eq!(stack.failed_rule(), None, "{name}");
        let config = stack.function_config();
        assert_eq!(config.raw_prefix, stack.param("RawPrefix"), "{name}");
        assert_eq!(
            config.curated_prefix,
            stack.param("CuratedPrefix"),
            "{name}"
        );
        assert_eq!(
            config.rejected_prefix,
            stack.param("RejectedPrefix"),
            "{name}"
        );
        assert_eq!(config.alerts_prefix, stack.param("AlertsPrefix"), "{name}");
        assert_eq!(config.state_prefix, stack.param("StatePrefix"), "{name}");
        assert_eq!(config.lake.prefix, stack.param("LakePrefix"), "{name}");
        assert_eq!(
            config.lake.settle_minutes.to_string(),
            stack.param("LakeSettleMinutes"),
            "{name}"
        );
        assert_eq!(config.output_bucket.as_deref(), Some(LOG_BUCKET), "{name}");
        let env = stack.function_env();
        assert_eq!(
            env["METRICS_NAMESPACE"],
            stack.param("MetricsNamespace"),
            "{name}"
        );
        assert_eq!(env["METRICS_MODE"], stack.param("MetricsMode"), "{name}");
        assert_eq!(env["ALERT_TOPIC_ARN"], "{AlertTopic}", "{name}");
        for (variable, param, location) in [
            ("GEOIP_DB", "GeoIpDb", &config.geoip_db),
            ("ASN_DB", "AsnDb", &config.asn_db),
        ] {
            assert_eq!(env[variable], stack.param(param), "{name}");
            assert_eq!(
                location
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                stack.param(param),
                "{name}: {param} reaches the function"
            );
        }
        assert_eq!(
            env["ALERT_ALLOW_ASNS"],
            stack.param("AlertAllowAsns"),
            "{name}"
        );
        let alerts = &config.alerts;
        for (param, value) in [
            ("AlertSubject403Min", alerts.subject_403_min.to_string()),
            (
                "AlertSubject403WindowMinutes",
                alerts.subject_403_window_minutes.to_string(),
            ),
            ("AlertBucket403Min", alerts.bucket_403_min.to_string()),
            ("AlertLearningHours", alerts.learning_hours.to_string()),
        ] {
            assert_eq!(
                stack.param(param),
                value,
                "{name}: {param} reaches the function"
            );
        }
    }
}

#[test]
fn only_raw_log_keys_trigger_the_function_so_its_output_never_does() {
    for (name, stack) in scenarios() {
        let raw = stack.param("RawPrefix");
        for output in [
            "CuratedPrefix",
            "RejectedPrefix",
            "AlertsPrefix",
            "StatePrefix",
            "LakePrefix",
        ] {
            let prefix = stack.param(output);
            assert!(
                !overlaps(&raw, &prefix),
                "{name}: RawPrefix {raw} overlaps {output} {prefix}"
            );
        }
        let bucket = stack.deployed("LogBucket");
        let notifications = &bucket["Properties"]["NotificationConfiguration"];
        let mut targets = Vec::new();
        for (kind, target_key) in [
            ("LambdaConfigurations", "Function"),
            ("QueueConfigurations", "Queue"),
            ("TopicConfigurations", "Topic"),
        ] {
            for config in notifications
                .get(kind)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert!(
                    scalar(&config["Event"]).starts_with("s3:ObjectCreated:"),
                    "{name}: {config}"
                );
                let rules = config["Filter"]["S3Key"]["Rules"]
                    .as_array()
                    .expect("a key filter");
                let prefixes: Vec<String> = rules
                    .iter()
                    .filter(|r| scalar(&r["Name"]).eq_ignore_ascii_case("prefix"))
                    .map(|r| scalar(&r["Value"]))
                    .collect();
                assert_eq!(
                    prefixes,
                    std::slice::from_ref(&raw),
                    "{name}: the filter must be the raw prefix"
                );
                targets.push(scalar(&config[target_key]));
            }
        }
        assert!(
            notifications.get("EventBridgeConfiguration").is_none(),
            "{name}"
        );
        let expected = if stack.condition("UseQueue") {
            "{EventQueue.Arn}"
        } else {
            "{BucketlogFunction.Arn}"
        };
        assert_eq!(targets, [expected], "{name}: exactly one notification");
    }
}

#[test]
fn iam_reads_only_raw_and_state_and_writes_only_the_output_prefixes() {
    for (name, stack) in scenarios() {
        let raw = stack.object_arn("RawPrefix");
        let state = stack.object_arn("StatePrefix");
        let outputs: Vec<String> = ["CuratedPrefix", "RejectedPrefix", "AlertsPrefix"]
            .iter()
            .map(|p| stack.object_arn(p))
            .collect();
        let bucket_arn = format!("arn:aws:s3:::{LOG_BUCKET}");
        // The client databases given as s3:// URIs, each object by its exact ARN.
        let databases = stack.database_objects();
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for statement in stack.role_statements() {
            assert_eq!(statement["Effect"], "Allow", "{name}: {statement}");
            assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none());
            let resources = strings(&statement["Resource"]);
            for action in strings(&statement["Action"]) {
                assert!(!action.contains('*'), "{name}: wildcard action {action}");
                if resources.iter().any(|r| r == "*") {
                    assert_eq!(action, "cloudwatch:PutMetricData", "{name}: {action} on *");
                    assert_eq!(
                        statement["Condition"]["StringEquals"]["cloudwatch:namespace"],
                        json!(stack.param("MetricsNamespace")),
                        "{name}: PutMetricData must be limited to the namespace"
                    );
                }
                if action == "s3:ListBucket" {
                    assert_eq!(resources, std::slice::from_ref(&bucket_arn), "{name}");
                    let listed = strings(&statement["Condition"]["StringLike"]["s3:prefix"]);
                    let allowed = [
                        format!("{}*", stack.param("RawPrefix")),
                        format!("{}*", stack.param("StatePrefix")),
                    ];
                    assert!(
                        !listed.is_empty(),
                        "{name}: ListBucket needs an s3:prefix condition"
                    );
                    assert!(
                        listed.iter().all(|p| allowed.contains(p)),
                        "{name}: lists {listed:?}"
                    );
                }
                granted
                    .entry(action)
                    .or_default()
                    .extend(resources.iter().cloned());
            }
        }
        let on = |action: &str| granted.get(action).cloned().unwrap_or_default();
        let set = |items: &[&String]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

        let readable: BTreeSet<String> = [&raw, &state]
            .into_iter()
            .chain(&databases)
            .cloned()
            .collect();
        assert_eq!(on("s3:GetObject"), readable, "{name}: GetObject");
        let writable: BTreeSet<String> = outputs.iter().chain([&state]).cloned().collect();
        assert_eq!(on("s3:PutObject"), writable, "{name}: PutObject");
        assert_eq!(
            on("s3:AbortMultipartUpload"),
            outputs.iter().cloned().collect(),
            "{name}: AbortMultipartUpload"
        );
        // Superseding an earlier version of a log object deletes its curated and rejected
        // outputs and its processed marker (src/pipeline/supersede.rs): nothing more.
        let processed = format!(
            "arn:aws:s3:::{LOG_BUCKET}/{}processed/*",
            stack.param("StatePrefix")
        );
        assert_eq!(
            on("s3:DeleteObject"),
            set(&[
                &stack.object_arn("CuratedPrefix"),
                &stack.object_arn("RejectedPrefix"),
                &processed
            ]),
            "{name}: DeleteObject"
        );
        for action in granted.keys().filter(|a| a.starts_with("s3:")) {
            assert!(
                [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:ListBucket"
                ]
                .contains(&action.as_str()),
                "{name}: unexpected {action}"
            );
            for resource in &granted[action] {
                let database = action == "s3:GetObject" && databases.contains(resource);
                assert!(
                    database
                        || resource == &bucket_arn
                        || resource.starts_with(&format!("{bucket_arn}/")),
                    "{name}: {action} outside the log bucket: {resource}"
                );
            }
        }
        // Writing under the raw prefix would let the function trigger itself.
        let raw_prefix = stack.param("RawPrefix");
        for resource in on("s3:PutObject") {
            let key = resource.trim_start_matches(&format!("{bucket_arn}/"));
            assert!(
                !overlaps(key.trim_end_matches('*'), &raw_prefix),
                "{name}: writes {resource}"
            );
        }
        assert_eq!(
            on("sns:Publish"),
            set(&[&"{AlertTopic}".to_string()]),
            "{name}"
        );
        let metrics_api = stack.param("MetricsMode") == "api";
        assert_eq!(
            granted.contains_key("cloudwatch:PutMetricData"),
            metrics_api,
            "{name}"
        );
        if stack.condition("UseQueue") {
            assert_eq!(
                on("sqs:ReceiveMessage"),
                set(&[&"{EventQueue.Arn}".to_string()])
            );
            assert!(!granted.contains_key("sqs:SendMessage"), "{name}");
        } else {
            assert_eq!(
                on("sqs:SendMessage"),
                set(&[&"{DeadLetterQueue.Arn}".to_string()])
            );
            assert!(!granted.contains_key("sqs:ReceiveMessage"), "{name}");
        }
    }
}

#[test]
fn the_role_reads_a_client_database_in_s3_and_only_that_object() {
    const CITY: &str = "s3://geo-data-example/maxmind/GeoLite2-City.mmdb";
    const ASN: &str = "s3://geo-data-example/maxmind/GeoLite2-ASN.mmdb";
    const CITY_ARN: &str = "arn:aws:s3:::geo-data-example/maxmind/GeoLite2-City.mmdb";
    const ASN_ARN: &str = "arn:aws:s3:::geo-data-example/maxmind/GeoLite2-ASN.mmdb";
    let cases: [(&str, &str, &[&str]); 7] = [
        ("", "", &[]),
        ("/opt/geo/GeoLite2-City.mmdb", ASN_DB_LAYER, &[]),
        (CITY, "", &[CITY_ARN]),
        ("", ASN, &[ASN_ARN]),
        (CITY, ASN, &[CITY_ARN, ASN_ARN]),
        ("/opt/geo/GeoLite2-City.mmdb", ASN, &[ASN_ARN]),
        // Only a value that starts with s3:// is an object.
        ("/opt/geo/s3://GeoLite2-City.mmdb", "", &[]),
    ];
    for (geo, asn, expected) in cases {
        let name = format!("GeoIpDb={geo:?} AsnDb={asn:?}");
        let stack = Stack::new(&[("GeoIpDb", geo), ("AsnDb", asn)]);
        let grants: Vec<Value> = stack
            .role_statements()
            .into_iter()
            .filter(|s| s["Sid"] == "ReadClientDatabases")
            .collect();
        if expected.is_empty() {
            assert!(grants.is_empty(), "{name}: {grants:?}");
        } else {
            assert_eq!(grants.len(), 1, "{name}: {grants:?}");
            let grant = &grants[0];
            assert_eq!(strings(&grant["Action"]), ["s3:GetObject"], "{name}");
            assert_eq!(strings(&grant["Resource"]), expected, "{name}");
            assert!(grant.get("Condition").is_none(), "{name}");
        }
        assert_eq!(stack.database_objects(), expected, "{name}");
        let env = stack.function_env();
        assert_eq!(env["GEOIP_DB"], geo, "{name}");
        assert_eq!(env["ASN_DB"], asn, "{name}");
        // Only the function that curates records opens the databases.
        let compactor = stack.env_of("CompactionFunction");
        assert!(
            !compactor.contains_key("GEOIP_DB") && !compactor.contains_key("ASN_DB"),
            "{name}"
        );
        assert!(
            stack
                .statements_of("CompactionRole")
                .iter()
                .all(|s| s["Sid"] != "ReadClientDatabases"),
            "{name}"
        );
    }

    // Databases in a layer: the layers reach the function (under /opt), and only it.
    let none = Stack::new(&[]);
    assert!(
        none.deployed("BucketlogFunction")["Properties"]
            .get("Layers")
            .is_none()
    );
    let layer = "arn:aws:lambda:us-east-1:123456789012:layer:geo-databases:3";
    let layered = Stack::new(&[
        ("FunctionLayerArns", layer),
        ("GeoIpDb", "/opt/geo/GeoLite2-City.mmdb"),
    ]);
    assert_eq!(
        layered.deployed("BucketlogFunction")["Properties"]["Layers"],
        json!([layer])
    );
    assert!(
        layered.deployed("CompactionFunction")["Properties"]
            .get("Layers")
            .is_none()
    );
    assert!(layered.database_objects().is_empty());
}

#[test]
fn an_asn_allowlist_without_an_asn_database_is_refused_at_deploy_as_at_cold_start() {
    let refused = Stack::new(&[("AlertAllowAsns", "16509")]);
    let rule = refused
        .failed_rule()
        .expect("a rule refuses AlertAllowAsns alone");
    assert!(rule.contains("AsnDb"), "{rule}");
    let error = refused
        .try_config_of("BucketlogFunction")
        .expect_err("the function refuses ALERT_ALLOW_ASNS without ASN_DB");
    assert!(error.to_string().contains("ALERT_ALLOW_ASNS"), "{error}");

    let allowed = Stack::new(&[
        ("AlertAllowAsns", "16509, AS13335"),
        ("AsnDb", ASN_DB_LAYER),
    ]);
    assert_eq!(allowed.failed_rule(), None);
    assert_eq!(allowed.function_config().alerts.allow_asns, [16509, 13335]);
    assert_eq!(Stack::new(&[]).failed_rule(), None);
}

#[test]
fn bucket_policy_admits_log_delivery_only_under_raw_and_from_the_source_account() {
    for (name, stack) in scenarios() {
        let policy = stack.deployed("LogBucketPolicy");
        let statements = policy["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements")
            .clone();
        let delivery: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Principal"]["Service"] == "logging.s3.amazonaws.com")
            .filter(|s| s["Effect"] == "Allow")
            .collect();
        assert_eq!(delivery.len(), 1, "{name}");
        let delivery = delivery[0];
        assert_eq!(delivery["Effect"], "Allow");
        assert_eq!(strings(&delivery["Action"]), ["s3:PutObject"], "{name}");
        assert_eq!(
            strings(&delivery["Resource"]),
            [stack.object_arn("RawPrefix")],
            "{name}"
        );
        assert_eq!(
            delivery["Condition"]["StringEquals"]["aws:SourceAccount"],
            json!(ACCOUNT),
            "{name}: the source-account condition"
        );
        let sources: Vec<String> = stack.params["SourceBuckets"]
            .as_array()
            .expect("list")
            .iter()
            .map(scalar)
            .filter(|s| !s.is_empty())
            .collect();
        let source_arns = strings(&delivery["Condition"]["ArnLike"]["aws:SourceArn"]);
        let expected: Vec<String> = sources.iter().map(|b| format!("arn:*:s3:::{b}")).collect();
        assert_eq!(source_arns, expected, "{name}: the source-bucket condition");

        let tls = statements
            .iter()
            .find(|s| s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
            .unwrap_or_else(|| panic!("{name}: no TLS-only statement"));
        assert_eq!(tls["Effect"], "Deny");
        assert_eq!(tls["Principal"], "*");
        assert_eq!(strings(&tls["Action"]), ["s3:*"]);
        let bucket_arn = format!("arn:aws:s3:::{LOG_BUCKET}");
        assert_eq!(
            strings(&tls["Resource"]),
            [bucket_arn.clone(), format!("{bucket_arn}/*")]
        );
    }
}

#[test]
fn log_bucket_is_private_encrypted_and_expires_each_prefix() {
    let stack = Stack::new(&[]);
    let bucket = stack.deployed("LogBucket");
    let properties = &bucket["Properties"];
    assert_eq!(properties["BucketName"], LOG_BUCKET);
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            properties["PublicAccessBlockConfiguration"][setting], true,
            "{setting}"
        );
    }
    let encryption = &properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(
        encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "AES256"
    );
    assert_eq!(bucket["DeletionPolicy"], "Retain");

    // Rules by prefix; the tag-filtered rule of compacted curated objects is checked in
    // compacted_curated_objects_expire_only_when_asked_and_only_once_tagged.
    let rules_of = |stack: &Stack| -> BTreeMap<String, String> {
        let bucket = stack.deployed("LogBucket");
        bucket["Properties"]["LifecycleConfiguration"]["Rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r.get("ExpirationInDays").is_some() && r.get("TagFilters").is_none())
            .map(|r| (scalar(&r["Prefix"]), scalar(&r["ExpirationInDays"])))
            .collect()
    };
    let rules = rules_of(&stack);
    for (prefix, days) in [
        ("RawPrefix", "RawLogRetentionDays"),
        ("CuratedPrefix", "CuratedRetentionDays"),
        ("RejectedPrefix", "RejectedRetentionDays"),
        ("AlertsPrefix", "AlertsRetentionDays"),
    ] {
        assert_eq!(
            rules.get(&stack.param(prefix)),
            Some(&stack.param(days)),
            "{prefix}"
        );
    }
    // Markers expire with the raw logs, and files a compaction staged but did not delete
    // after a day; the rest of the state (the baseline, dirty markers, the lake's
    // manifests) never does.
    let state = stack.param("StatePrefix");
    let state_rules: Vec<(&String, &String)> = rules
        .iter()
        .filter(|(p, _)| p.starts_with(&state))
        .collect();
    assert_eq!(
        state_rules,
        [
            (&format!("{state}lake/staging/"), &"1".to_string()),
            (
                &format!("{state}processed/"),
                &stack.param("RawLogRetentionDays")
            ),
        ]
    );
    assert!(
        !rules.contains_key(&stack.param("LakePrefix")),
        "the lake is kept"
    );

    let keep = Stack::new(&[("CuratedRetentionDays", "0"), ("RawLogRetentionDays", "0")]);
    let rules = rules_of(&keep);
    assert!(
        !rules.contains_key(&keep.param("CuratedPrefix")),
        "0 keeps curated data"
    );
    assert!(
        !rules.contains_key(&keep.param("RawPrefix")),
        "0 keeps raw logs"
    );
    assert!(rules.contains_key(&keep.param("RejectedPrefix")));

    let existing = Stack::new(&[("CreateLogBucket", "false")]);
    assert!(existing.resource("LogBucket").is_none());
    assert!(existing.resource("LogBucketPolicy").is_none());
    assert_eq!(
        existing.function_config().output_bucket.as_deref(),
        Some(LOG_BUCKET)
    );
}

#[test]
fn failed_log_objects_end_in_the_dead_letter_queue_in_both_trigger_modes() {
    let queued = Stack::new(&[]);
    assert_eq!(queued.param("UseSqsQueue"), "true");
    let mapping = queued.deployed("QueueEventSource");
    assert_eq!(mapping["Properties"]["EventSourceArn"], "{EventQueue.Arn}");
    assert_eq!(
        mapping["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let queue = queued.deployed("EventQueue");
    assert_eq!(
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        "{DeadLetterQueue.Arn}"
    );
    let max_timeout = &queued.template["Parameters"]["FunctionTimeout"]["MaxValue"];
    let visibility: u64 = scalar(&queue["Properties"]["VisibilityTimeout"])
        .parse()
        .unwrap();
    assert!(visibility >= scalar(max_timeout).parse::<u64>().unwrap());
    let queue_policy = queued.deployed("EventQueuePolicy");
    let statement = &queue_policy["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        statement["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!(format!("arn:aws:s3:::{LOG_BUCKET}"))
    );
    assert_eq!(
        statement["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT
    );
    assert!(queued.resource("S3InvokePermission").is_none());
    assert!(queued.resource("AsyncInvokeConfig").is_none());

    let direct = Stack::new(&[("UseSqsQueue", "false")]);
    let config = direct.deployed("AsyncInvokeConfig");
    assert_eq!(
        config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
        "{DeadLetterQueue.Arn}"
    );
    let permission = direct.deployed("S3InvokePermission");
    assert_eq!(permission["Properties"]["Principal"], "s3.amazonaws.com");
    assert_eq!(permission["Properties"]["SourceAccount"], ACCOUNT);
    assert_eq!(
        permission["Properties"]["SourceArn"],
        json!(format!("arn:aws:s3:::{LOG_BUCKET}"))
    );
    assert!(direct.resource("EventQueue").is_none());
    assert!(direct.resource("QueueEventSource").is_none());
}

#[test]
fn function_is_the_arm64_lambda_binary_with_small_defaults() {
    let stack = Stack::new(&[]);
    let function = stack.deployed("BucketlogFunction");
    assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
    let binary = scalar(&function["Metadata"]["BuildProperties"]["Binary"]);
    assert!(
        repo_file("Cargo.toml").contains(&format!("name = \"{binary}\"")),
        "Cargo.toml has no [[bin]] {binary}"
    );
    let properties = &function["Properties"];
    assert_eq!(properties["Runtime"], "provided.al2023");
    assert_eq!(properties["Handler"], "bootstrap");
    assert_eq!(properties["Architectures"], json!(["arm64"]));
    assert_eq!(scalar(&properties["MemorySize"]), "128");
    assert!(
        properties.get("ReservedConcurrentExecutions").is_none(),
        "0 means none"
    );
    let reserved = Stack::new(&[("ReservedConcurrency", "5")]);
    assert_eq!(
        scalar(
            &reserved.deployed("BucketlogFunction")["Properties"]["ReservedConcurrentExecutions"]
        ),
        "5"
    );
}

#[test]
fn every_alarm_notifies_the_alert_topic_and_the_spec_alarms_exist() {
    let stack = Stack::new(&[]);
    let alarms = stack.resources_of_type("AWS::CloudWatch::Alarm");
    let mut watched = BTreeSet::new();
    for (name, alarm) in &alarms {
        let properties = &alarm["Properties"];
        assert_eq!(
            properties["AlarmActions"],
            json!(["{AlertTopic}"]),
            "{name}"
        );
        if let Some(metric) = properties.get("MetricName") {
            watched.insert(scalar(metric));
        }
        for query in properties
            .get("Metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let expression = scalar(&query["Expression"]);
            let metric = expression
                .split(['(', ')'])
                .nth(1)
                .unwrap_or_else(|| panic!("{name}: {expression}"));
            assert!(
                expression.contains(&format!("SCHEMA(\"{}\"", stack.param("MetricsNamespace"))),
                "{name}: {expression}"
            );
            watched.insert(metric.to_string());
        }
    }
    for metric in [
        "Forbidden403",
        "Alerts",
        "Errors",
        "Throttles",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
    ] {
        assert!(
            watched.contains(metric),
            "no alarm on {metric}: {watched:?}"
        );
    }
    // Errors of each function: the compactor's failures fail its invocation.
    let errors_of: BTreeSet<String> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"]["MetricName"] == "Errors")
        .map(|(_, a)| scalar(&a["Properties"]["Dimensions"][0]["Value"]))
        .collect();
    assert_eq!(
        errors_of,
        ["{BucketlogFunction}", "{CompactionFunction}"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    let topic = stack.template["Resources"]["AlertEmailSubscription"]["Condition"].clone();
    assert_eq!(topic, "HasAlertEmail");
    assert!(
        Stack::new(&[("AlertEmail", "ops@example.com")])
            .resource("AlertEmailSubscription")
            .is_some()
    );
}

#[test]
fn dashboard_body_is_valid_json_and_shows_every_metric() {
    let stack = Stack::new(&[]);
    let dashboard = stack.deployed("Dashboard");
    let body = scalar(&dashboard["Properties"]["DashboardBody"]);
    let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert!(parsed["widgets"].as_array().is_some_and(|w| w.len() >= 10));
    for metric in [
        "Requests",
        "Errors4xx",
        "Errors5xx",
        "Forbidden403",
        "NotFound404",
        "AnonymousRequests",
        "BytesSent",
        "TotalTimeMs",
        "Alerts",
        "RejectedLines",
        "DeliveryDelaySeconds",
    ] {
        assert!(
            body.contains(&format!("MetricName=\\\"{metric}\\\"")),
            "{metric} missing"
        );
    }
    for metric in ["\"Duration\"", "\"Errors\"", "\"Throttles\""] {
        assert!(body.contains(metric), "{metric} missing");
    }
    assert!(body.contains("{\\\"S3AccessLogs\\\",Bucket}"));
    assert!(body.contains("{\\\"S3AccessLogs\\\",AlertType}"));
    // No metric per country or network: the dashboard names the saved query instead.
    let query = stack.deployed("ForbiddenByCountryQuery");
    let query_name = scalar(&query["Properties"]["Name"]);
    assert!(body.contains(&query_name), "no pointer to {query_name}");
}

/// The curated-record field names from SCHEMA.md: every table row before "Decoding the
/// key" (whose tables are about operations, not fields).
fn schema_fields() -> Vec<String> {
    let schema = repo_file("SCHEMA.md");
    let curated = schema
        .split("## Decoding the key")
        .next()
        .expect("SCHEMA.md");
    curated
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn glue_table_matches_the_schema_and_the_curated_layout() {
    for (name, stack) in scenarios() {
        let table = stack.deployed("CuratedTable");
        let input = &table["Properties"]["TableInput"];
        let curated = format!("s3://{LOG_BUCKET}/{}", stack.param("CuratedPrefix"));
        let parameters = &input["Parameters"];
        assert_eq!(
            parameters["storage.location.template"],
            json!(format!(
                "{curated}bucket=${{bucket}}/dt=${{dt}}/hour=${{hour}}/"
            )),
            "{name}: must match the curated layout in src/pipeline.rs"
        );
        assert_eq!(
            input["StorageDescriptor"]["Location"],
            json!(curated),
            "{name}"
        );
        assert_eq!(parameters["projection.enabled"], "true");
        assert_eq!(parameters["projection.bucket.type"], "injected");
        assert_eq!(parameters["projection.dt.type"], "date");
        assert_eq!(parameters["projection.dt.format"], "yyyy-MM-dd");
        assert_eq!(
            parameters["projection.dt.range"],
            json!(format!("{},NOW", stack.param("ProjectionStartDate")))
        );
        assert_eq!(parameters["projection.hour.type"], "integer");
        assert_eq!(parameters["projection.hour.range"], "0,23");
        assert_eq!(parameters["projection.hour.digits"], "2");
        let partitions: Vec<String> = input["PartitionKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| scalar(&k["Name"]))
            .collect();
        assert_eq!(partitions, ["bucket", "dt", "hour"]);
        let serde = &input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"];
        assert_eq!(serde, "org.openx.data.jsonserde.JsonSerDe");

        let columns = glue_columns(input);
        let column_names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        // `bucket` is the partition column: a data column of that name would clash.
        let expected: Vec<String> = schema_fields()
            .into_iter()
            .filter(|f| f != "bucket")
            .collect();
        assert_eq!(
            column_names, expected,
            "columns must follow SCHEMA.md, in order"
        );
        assert!(
            columns.contains(&("time".into(), "string".into())),
            "time is RFC 3339 text"
        );
    }
}

#[test]
fn lake_table_is_parquet_with_the_lake_columns_and_the_lake_layout() {
    let off = (
        "no lake compaction",
        Stack::new(&[("LakeCompactionSchedule", "")]),
    );
    for (name, stack) in scenarios().into_iter().chain([off]) {
        let table = stack.deployed("LakeTable");
        let input = &table["Properties"]["TableInput"];
        assert_eq!(
            input["Name"],
            json!(stack.param("GlueLakeTableName")),
            "{name}"
        );
        assert_eq!(input["TableType"], "EXTERNAL_TABLE", "{name}");
        let lake = format!("s3://{LOG_BUCKET}/{}", stack.param("LakePrefix"));
        let parameters = &input["Parameters"];
        assert_eq!(parameters["classification"], "parquet", "{name}");
        assert_eq!(
            parameters["storage.location.template"],
            json!(format!(
                "{lake}bucket=${{bucket}}/dt=${{dt}}/hour=${{hour}}/"
            )),
            "{name}: must match Partition::lake_prefix in src/lake/partition.rs"
        );
        let descriptor = &input["StorageDescriptor"];
        assert_eq!(descriptor["Location"], json!(lake), "{name}");
        assert_eq!(
            descriptor["SerdeInfo"]["SerializationLibrary"],
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        );
        assert_eq!(
            descriptor["InputFormat"],
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
        );
        assert_eq!(
            descriptor["OutputFormat"],
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
        );

        // Partitions and projection exactly as the NDJSON table's.
        let curated = stack.deployed("CuratedTable");
        let curated_input = &curated["Properties"]["TableInput"];
        assert_eq!(
            input["PartitionKeys"], curated_input["PartitionKeys"],
            "{name}"
        );
        let projection = |parameters: &Value| -> BTreeMap<String, Value> {
            parameters
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with("projection."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let projected = projection(parameters);
        assert_eq!(
            projected,
            projection(&curated_input["Parameters"]),
            "{name}"
        );
        assert_eq!(projected["projection.enabled"], "true");
        assert_eq!(projected["projection.bucket.type"], "injected");
        assert_eq!(projected["projection.dt.type"], "date");
        assert_eq!(projected["projection.hour.type"], "integer");

        // The columns of the Parquet files, less the partition column, in file order.
        let columns = glue_columns(input);
        let expected: Vec<(String, String)> = bucketlog::lake::schema::COLUMNS
            .iter()
            .filter(|(n, _)| *n != "bucket")
            .map(|(n, t)| (n.to_string(), t.glue().to_string()))
            .collect();
        assert_eq!(
            columns, expected,
            "{name}: the columns of src/lake/schema.rs"
        );
        assert!(columns.contains(&("time".into(), "timestamp".into())));
        // The same records as the NDJSON table: the same names, and the same types but
        // for `time`.
        let ndjson: Vec<(String, String)> = glue_columns(curated_input)
            .into_iter()
            .map(|(n, t)| {
                let t = if n == "time" {
                    "timestamp".to_string()
                } else {
                    t
                };
                (n, t)
            })
            .collect();
        assert_eq!(columns, ndjson, "{name}");
    }
}

#[test]
fn athena_named_queries_read_the_lake_and_filter_on_the_injected_bucket_partition() {
    let stack = Stack::new(&[]);
    let queries = stack.resources_of_type("AWS::Athena::NamedQuery");
    assert!(
        queries.len() >= 6,
        "top requesters, 403s by IP, largest downloads, anonymous, 403s by country and \
         ASN, clients by user agent"
    );
    // Countries and networks are columns, not metrics (a series per country is billed).
    let by_network = stack.deployed("ForbiddenByCountryQuery");
    let sql = scalar(&by_network["Properties"]["QueryString"]);
    assert!(
        sql.contains("GROUP BY client_country, client_asn, client_as_org")
            && sql.contains("count(DISTINCT remote_ip)")
            && sql.contains("http_status = 403"),
        "{sql}"
    );
    let quoted = |table: &str| format!("\"{}\".\"{table}\"", stack.param("GlueDatabaseName"));
    let lake = format!("FROM {}", quoted(&stack.param("GlueLakeTableName")));
    let ndjson = quoted(&stack.param("GlueTableName"));
    // Without compaction the lake stays empty: the same queries read the NDJSON table.
    let off = Stack::new(&[("LakeCompactionSchedule", "")]);
    let mut times = 0;
    for (name, query) in queries {
        let sql = scalar(&query["Properties"]["QueryString"]);
        assert!(sql.contains(&lake), "{name}: {sql}");
        assert!(
            sql.contains(&ndjson),
            "{name}: should say the NDJSON table has the newest minutes"
        );
        assert!(
            sql.contains("WHERE bucket = "),
            "{name}: must filter on the bucket partition"
        );
        assert!(sql.contains("AND dt >= "), "{name}: should prune by date");
        // `time` is a timestamp in the lake, RFC 3339 text in the NDJSON.
        assert!(!sql.contains("from_iso8601_timestamp"), "{name}: {sql}");
        times += sql.matches("\"time\"").count();

        let without = scalar(&off.deployed(&name)["Properties"]["QueryString"]);
        let expected = sql
            .replace(&lake, &format!("FROM {ndjson}"))
            .replace("\"time\"", "from_iso8601_timestamp(\"time\")");
        assert_eq!(without, expected, "{name}: otherwise the same query");
    }
    assert!(
        times >= 3,
        "the queries that show times read the timestamp column"
    );
}

#[test]
fn outputs_name_the_bucket_the_raw_prefix_the_topic_the_dashboard_and_the_table() {
    let stack = Stack::new(&[]);
    let outputs = stack.eval(&stack.template["Outputs"]).unwrap();
    assert_eq!(outputs["LogBucket"]["Value"], LOG_BUCKET);
    assert_eq!(
        outputs["RawPrefix"]["Value"],
        json!(stack.param("RawPrefix"))
    );
    assert_eq!(outputs["AlertTopicArn"]["Value"], "{AlertTopic}");
    assert!(scalar(&outputs["DashboardUrl"]["Value"]).contains("#dashboards:name={Dashboard}"));
    assert_eq!(outputs["GlueTable"]["Value"], "bucketlog.access_logs");
    assert_eq!(
        outputs["GlueLakeTable"]["Value"],
        "bucketlog.access_logs_lake"
    );
    let status: Value =
        serde_json::from_str(&scalar(&outputs["BucketLoggingStatus"]["Value"])).unwrap();
    assert_eq!(status["LoggingEnabled"]["TargetBucket"], LOG_BUCKET);
    assert_eq!(
        status["LoggingEnabled"]["TargetPrefix"],
        json!(stack.param("RawPrefix"))
    );
}

#[test]
fn deploy_guide_documents_every_parameter() {
    let guide = repo_file("docs/deploy.md");
    let template = parse_template();
    for name in template["Parameters"].as_object().unwrap().keys() {
        assert!(
            guide.contains(&format!("`{name}`")),
            "docs/deploy.md does not document `{name}`"
        );
    }
}

#[test]
fn cargo_lambda_deploy_metadata_matches_the_template() {
    let manifest = repo_file("Cargo.toml");
    let section = manifest
        .split("[package.metadata.lambda.deploy]")
        .nth(1)
        .expect("Cargo.toml has a [package.metadata.lambda.deploy] section");
    let setting = |key: &str| -> String {
        section
            .lines()
            .find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("no {key} in the cargo-lambda deploy metadata"))
    };
    let stack = Stack::new(&[]);
    assert_eq!(setting("binary_name"), "bucketlog-lambda");
    assert_eq!(setting("memory"), stack.param("FunctionMemorySize"));
    assert_eq!(setting("timeout"), stack.param("FunctionTimeout"));
    let env = stack.function_env();
    // The lake's settings are among those compared (processing marks partitions dirty).
    for key in ["LAKE_PREFIX", "LAKE_SETTLE_MINUTES", "LAKE_TAG_COMPACTED"] {
        assert!(env.contains_key(key), "the template sets no {key}");
    }
    assert_eq!(setting("LAKE_TAG_COMPACTED"), "false");
    for (key, value) in &env {
        if key == "OUTPUT_BUCKET" || key == "ALERT_TOPIC_ARN" || key == "DETECTION_TABLE" {
            continue; // account-specific: given at deploy time
        }
        assert_eq!(
            &setting(key),
            value,
            "{key} in [package.metadata.lambda.deploy.env]"
        );
    }
}

// --- The log bucket's policy, evaluated ------------------------------------------------
//
// The checks below do not only look for statements: they evaluate the rendered bucket
// policy the way S3 does for the keys the tests name (explicit Deny first, then Allow),
// so a Deny whose conditions would also catch the function's role or the logging service
// fails here, not in production.

/// Who signs a request: a service principal, or an IAM role or user (`aws:PrincipalArn`).
#[derive(Clone, Copy, Debug)]
enum Caller<'a> {
    Service(&'a str),
    Iam(&'a str),
}

/// One request against the log bucket, as the bucket policy sees it.
#[derive(Clone, Debug)]
struct Request<'a> {
    caller: Caller<'a>,
    action: &'a str,
    /// The resource ARN: the bucket, or `bucket/key`.
    resource: String,
    /// `aws:SourceArn`, which S3 log delivery sets to the source bucket.
    source_arn: Option<&'a str>,
    secure: bool,
}

const LOGGING: &str = "logging.s3.amazonaws.com";
/// What `Fn::GetAtt [FunctionRole, Arn]` renders as.
const FUNCTION_ROLE: &str = "{FunctionRole.Arn}";
/// What `Fn::GetAtt [CompactionRole, Arn]` renders as.
const COMPACTION_ROLE: &str = "{CompactionRole.Arn}";
const OTHER_ROLE: &str = "arn:aws:iam::123456789012:role/someone-else";

fn object(key: &str) -> String {
    format!("arn:aws:s3:::{LOG_BUCKET}/{key}")
}

impl<'a> Request<'a> {
    fn new(caller: Caller<'a>, action: &'a str, resource: String) -> Self {
        Request {
            caller,
            action,
            resource,
            source_arn: None,
            secure: true,
        }
    }

    fn delivery(key: &str, source_bucket: &'a str) -> Self {
        Request {
            source_arn: Some(source_bucket),
            ..Request::new(Caller::Service(LOGGING), "s3:PutObject", object(key))
        }
    }

    /// The request context: condition key -> value (absent keys are absent).
    fn context(&self) -> BTreeMap<&'static str, String> {
        let mut context = BTreeMap::new();
        match self.caller {
            Caller::Service(name) => {
                context.insert("aws:PrincipalServiceName", name.to_string());
                context.insert("aws:SourceAccount", ACCOUNT.to_string());
            }
            Caller::Iam(arn) => {
                context.insert("aws:PrincipalArn", arn.to_string());
                context.insert("aws:PrincipalAccount", ACCOUNT.to_string());
            }
        }
        if let Some(source) = self.source_arn {
            context.insert("aws:SourceArn", source.to_string());
        }
        context.insert("aws:SecureTransport", self.secure.to_string());
        context
    }
}

/// IAM's `*` and `?` wildcards, case-sensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn principal_matches(principal: &Value, caller: Caller) -> bool {
    if principal == "*" {
        return true;
    }
    match caller {
        Caller::Service(name) => strings(&principal["Service"]).iter().any(|s| s == name),
        Caller::Iam(arn) => strings(&principal["AWS"])
            .iter()
            .any(|p| p == "*" || glob(p, arn)),
    }
}

/// Every operator of a `Condition` block must hold (AND), and so must every key under it.
/// A negated operator is true when its key is absent from the request, as in IAM.
fn conditions_hold(condition: &Value, context: &BTreeMap<&'static str, String>) -> bool {
    let Some(operators) = condition.as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object()
            .unwrap_or_else(|| panic!("condition {operator}: {keys}"))
            .iter()
            .all(|(key, wanted)| {
                let wanted = strings(wanted);
                let value = context.get(key.as_str());
                let any = |test: &dyn Fn(&str, &str) -> bool| {
                    value.is_some_and(|v| wanted.iter().any(|w| test(w, v)))
                };
                match operator.as_str() {
                    "StringEquals" | "Bool" => any(&|w, v| w == v),
                    "StringLike" | "ArnEquals" | "ArnLike" => any(&glob),
                    "StringNotEquals" => !any(&|w, v| w == v),
                    "StringNotLike" | "ArnNotEquals" | "ArnNotLike" => !any(&glob),
                    other => panic!("the evaluator does not know the {other} operator"),
                }
            })
    })
}

fn statement_applies(statement: &Value, request: &Request) -> bool {
    assert!(
        statement.get("NotPrincipal").is_none()
            && statement.get("NotAction").is_none()
            && statement.get("NotResource").is_none(),
        "use conditions, not Not* elements: {statement}"
    );
    principal_matches(&statement["Principal"], request.caller)
        && strings(&statement["Action"])
            .iter()
            .any(|a| glob(a, request.action))
        && strings(&statement["Resource"])
            .iter()
            .any(|r| glob(r, &request.resource))
        && conditions_hold(&statement["Condition"], &request.context())
}

/// What the bucket policy says about a request.
#[derive(Debug, PartialEq)]
enum Verdict {
    Denied,
    Allowed,
    /// Neither: up to the caller's IAM policy (same account).
    Silent,
}

impl Stack {
    fn bucket_policy_statements(&self) -> Vec<Value> {
        self.deployed("LogBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements")
            .clone()
    }

    fn judge(&self, request: &Request) -> Verdict {
        let applying: Vec<Value> = self
            .bucket_policy_statements()
            .into_iter()
            .filter(|s| statement_applies(s, request))
            .collect();
        if applying.iter().any(|s| s["Effect"] == "Deny") {
            Verdict::Denied
        } else if applying.iter().any(|s| s["Effect"] == "Allow") {
            Verdict::Allowed
        } else {
            Verdict::Silent
        }
    }

    fn statement(&self, sid: &str) -> Value {
        self.bucket_policy_statements()
            .into_iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no bucket policy statement {sid}"))
    }

    /// The prefixes only the function (and the admin) may write, as the function's
    /// environment names them, plus the lake prefix the function will write.
    fn guarded_prefixes(&self) -> Vec<String> {
        let config = self.function_config();
        vec![
            config.state_prefix.clone(),
            config.curated_prefix.clone(),
            config.rejected_prefix.clone(),
            config.alerts_prefix.clone(),
            self.param("LakePrefix"),
        ]
    }

    fn raw_writers(&self) -> Vec<String> {
        strings(&self.params["RawWriterPrincipalArns"])
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[test]
fn policy_evaluator_follows_iam_semantics() {
    assert!(glob("arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/raw/x/y"));
    assert!(!glob("arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/rawx"));
    assert!(glob("a?c*", "abcdef") && !glob("a?c", "abcd"));
    let context = Request::new(Caller::Service(LOGGING), "s3:PutObject", object("k")).context();
    // A negated operator on a key the request lacks holds; a positive one does not.
    assert!(conditions_hold(
        &json!({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::1:role/x"}}),
        &context
    ));
    assert!(!conditions_hold(
        &json!({"ArnLike": {"aws:PrincipalArn": "*"}}),
        &context
    ));
    // Operators combine with AND.
    assert!(!conditions_hold(
        &json!({"StringNotEquals": {"aws:PrincipalServiceName": LOGGING},
                "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::1:role/x"}}),
        &context
    ));
    // Every request without TLS is denied, whoever sends it.
    for (name, stack) in scenarios() {
        let request = Request {
            secure: false,
            ..Request::new(Caller::Iam(FUNCTION_ROLE), "s3:GetObject", object("raw/x"))
        };
        assert_eq!(stack.judge(&request), Verdict::Denied, "{name}");
    }
}

#[test]
fn bucket_policy_refuses_log_delivery_from_the_log_bucket_itself() {
    let log_bucket_arn = format!("arn:aws:s3:::{LOG_BUCKET}");
    let listed_too = Stack::new(&[("SourceBuckets", &format!("assets-prod,{LOG_BUCKET}"))]);
    for (name, stack) in scenarios()
        .into_iter()
        .chain([("the log bucket in SourceBuckets", listed_too)])
    {
        let raw = stack.function_config().raw_prefix;
        let key = format!("{raw}2026-11-20-14-05-12-5A1B2C3D4E5F6789");
        let source = match strings(&stack.params["SourceBuckets"]).first() {
            Some(first) if !first.is_empty() => format!("arn:aws:s3:::{first}"),
            _ => "arn:aws:s3:::any-bucket-of-the-account".to_string(),
        };
        assert_eq!(
            stack.judge(&Request::delivery(&key, &source)),
            Verdict::Allowed,
            "{name}: delivery from {source}"
        );
        assert_eq!(
            stack.judge(&Request::delivery(&key, &log_bucket_arn)),
            Verdict::Denied,
            "{name}: the log bucket's own logs would invoke the function on its own work"
        );
        let deny = stack.statement("DenyLogDeliveryFromTheLogBucket");
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(deny["Principal"]["Service"], LOGGING);
        assert_eq!(
            strings(&deny["Condition"]["ArnEquals"]["aws:SourceArn"]),
            std::slice::from_ref(&log_bucket_arn),
            "{name}"
        );
        assert_eq!(strings(&deny["Resource"]), [object("*")], "{name}");
    }
}

#[test]
fn only_log_delivery_and_the_listed_writers_may_create_raw_logs() {
    for (name, stack) in scenarios() {
        let raw = stack.function_config().raw_prefix;
        let key = format!("{raw}copied/access.log");
        let writers = stack.raw_writers();
        assert_eq!(
            stack.judge(&Request::delivery(&key, "arn:aws:s3:::assets-prod")),
            Verdict::Allowed,
            "{name}: S3 log delivery"
        );
        for action in ["s3:PutObject", "s3:ReplicateObject"] {
            for forger in [FUNCTION_ROLE, OTHER_ROLE, ADMIN_ROLE] {
                let request = Request::new(Caller::Iam(forger), action, object(&key));
                assert_eq!(
                    stack.judge(&request),
                    Verdict::Denied,
                    "{name}: {forger} {action} {key}"
                );
            }
            // Another service granted PutObject somewhere cannot write raw logs either.
            let request = Request::new(Caller::Service("s3.amazonaws.com"), action, object(&key));
            assert_eq!(stack.judge(&request), Verdict::Denied, "{name}: {action}");
        }
        for (writer, arn) in [
            (RAW_WRITERS[0], RAW_WRITERS[0].to_string()),
            (RAW_WRITERS[1], RAW_WRITERS[1].replace('*', "nightly")),
        ] {
            let request = Request::new(Caller::Iam(&arn), "s3:PutObject", object(&key));
            let expected = if writers.iter().any(|w| w == writer) {
                Verdict::Silent // left to its IAM policy
            } else {
                Verdict::Denied
            };
            assert_eq!(stack.judge(&request), expected, "{name}: {arn}");
            // A raw writer is no state writer.
            let state = format!("{}processed/x@e", stack.param("StatePrefix"));
            let request = Request::new(Caller::Iam(&arn), "s3:PutObject", object(&state));
            assert_eq!(stack.judge(&request), Verdict::Denied, "{name}: {arn}");
        }
        // Reading and deleting raw logs are not this statement's business.
        let read = Request::new(Caller::Iam(FUNCTION_ROLE), "s3:GetObject", object(&key));
        assert_eq!(stack.judge(&read), Verdict::Silent, "{name}");

        // Exactly these exemptions: the logging service, and the listed principals.
        let deny = stack.statement("DenyRawWritesExceptLogDelivery");
        assert_eq!(deny["Principal"], "*", "{name}");
        assert_eq!(strings(&deny["Resource"]), [stack.object_arn("RawPrefix")]);
        let condition = deny["Condition"].as_object().expect("conditions");
        assert_eq!(
            condition["StringNotEquals"],
            json!({"aws:PrincipalServiceName": LOGGING}),
            "{name}"
        );
        let exempt = condition
            .get("ArnNotLike")
            .map(|c| strings(&c["aws:PrincipalArn"]))
            .unwrap_or_default();
        assert_eq!(exempt, writers, "{name}");
        let expected_keys = if writers.is_empty() { 1 } else { 2 };
        assert_eq!(condition.len(), expected_keys, "{name}: {condition:?}");
    }
}

#[test]
fn only_the_function_role_and_the_admin_role_may_write_state_and_outputs() {
    let writes = [
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:AbortMultipartUpload",
        "s3:ReplicateObject",
        "s3:ReplicateDelete",
        // A forged bucketlog-compacted tag would expire curated data (CuratedExpireDays).
        "s3:PutObjectTagging",
        "s3:PutObjectVersionTagging",
    ];
    let no_compaction = (
        "no lake compaction",
        Stack::new(&[("LakeCompactionSchedule", "")]),
    );
    for (name, stack) in scenarios().into_iter().chain([no_compaction]) {
        let compacts = stack.resource("CompactionRole").is_some();
        let admin = stack.param("AdminRoleArn");
        let prefixes = stack.guarded_prefixes();
        let raw = stack.function_config().raw_prefix;
        let lake = stack.param("LakePrefix");
        for prefix in &prefixes {
            assert!(!overlaps(prefix, &raw), "{name}: {prefix} overlaps {raw}");
            assert!(
                prefix == &lake || !overlaps(prefix, &lake),
                "{name}: {prefix} overlaps the lake prefix {lake}"
            );
            let key = format!("{prefix}bucket=b/dt=2026-11-20/hour=14/x.ndjson.gz");
            for action in writes {
                let request = |arn| Request::new(Caller::Iam(arn), action, object(&key));
                assert_eq!(
                    stack.judge(&request(FUNCTION_ROLE)),
                    Verdict::Silent,
                    "{name}: the function's own role must keep {action} on {key}"
                );
                let expected = if compacts {
                    Verdict::Silent
                } else {
                    Verdict::Denied
                };
                assert_eq!(
                    stack.judge(&request(COMPACTION_ROLE)),
                    expected,
                    "{name}: the compaction role, {action} on {key}"
                );
                assert_eq!(
                    stack.judge(&request(OTHER_ROLE)),
                    Verdict::Denied,
                    "{name}: {action} {key}"
                );
                let expected = if admin == ADMIN_ROLE {
                    Verdict::Silent
                } else {
                    Verdict::Denied
                };
                assert_eq!(stack.judge(&request(ADMIN_ROLE)), expected, "{name}: admin");
                let service = Request::new(Caller::Service(LOGGING), action, object(&key));
                assert_eq!(stack.judge(&service), Verdict::Denied, "{name}: {action}");
            }
            // Readers (Athena, the console) are untouched.
            let read = Request::new(Caller::Iam(OTHER_ROLE), "s3:GetObject", object(&key));
            assert_eq!(stack.judge(&read), Verdict::Silent, "{name}: {key}");
        }

        let deny = stack.statement("DenyStateAndOutputWritesExceptFunction");
        assert_eq!(deny["Principal"], "*", "{name}");
        let resources: BTreeSet<String> = strings(&deny["Resource"]).into_iter().collect();
        let expected: BTreeSet<String> =
            prefixes.iter().map(|p| object(&format!("{p}*"))).collect();
        assert_eq!(resources, expected, "{name}: the guarded prefixes");
        let mut exempt = vec![FUNCTION_ROLE.to_string()];
        if compacts {
            exempt.push(COMPACTION_ROLE.to_string());
        }
        if !admin.is_empty() {
            exempt.push(admin.clone());
        }
        assert_eq!(
            deny["Condition"],
            json!({"ArnNotLike": {"aws:PrincipalArn": exempt}}),
            "{name}: exactly the function's role and the admin role"
        );
    }
}

#[test]
fn the_bucket_policy_denies_nothing_the_function_role_is_granted() {
    let tagging = (
        "tagging compacted objects",
        Stack::new(&[("CuratedExpireDays", "30")]),
    );
    for (name, stack) in scenarios().into_iter().chain([tagging]) {
        let bucket_arn = format!("arn:aws:s3:::{LOG_BUCKET}");
        for (role, arn, least) in [
            ("FunctionRole", FUNCTION_ROLE, 8),
            ("CompactionRole", COMPACTION_ROLE, 8),
        ] {
            let mut checked = 0;
            for statement in stack.statements_of(role) {
                for action in strings(&statement["Action"])
                    .into_iter()
                    .filter(|a| a.starts_with("s3:"))
                {
                    for resource in strings(&statement["Resource"]) {
                        let concrete = if resource == bucket_arn {
                            resource.clone()
                        } else {
                            resource.replace('*', "bucket=b/dt=2026-11-20/hour=14/x")
                        };
                        let request = Request::new(Caller::Iam(arn), &action, concrete);
                        assert_ne!(
                            stack.judge(&request),
                            Verdict::Denied,
                            "{name}: {role} may {action} on {resource}, the bucket policy denies it"
                        );
                        checked += 1;
                    }
                }
            }
            assert!(checked >= least, "{name}: {role}: {checked}");
        }

        // Nothing else in the template writes into the log bucket: no custom resource,
        // no Athena workgroup with its results there. Only the Glue table (a reader) and
        // the dashboard's text name a location in it.
        for (resource, body) in stack.template["Resources"].as_object().unwrap() {
            let kind = scalar(&body["Type"]);
            assert!(
                !kind.starts_with("Custom::") && kind != "AWS::CloudFormation::CustomResource",
                "{name}: {resource} is a custom resource; check it against the bucket policy"
            );
            let Some(rendered) = stack.resource(resource) else {
                continue;
            };
            if rendered
                .to_string()
                .contains(&format!("s3://{LOG_BUCKET}/"))
            {
                assert!(
                    ["CuratedTable", "LakeTable", "Dashboard"].contains(&resource.as_str()),
                    "{name}: {resource} names a location in the log bucket; if it writes \
                     there, the bucket policy denies it"
                );
            }
        }
    }
}

#[test]
fn queue_mode_alarms_within_minutes_of_a_failed_object_and_keeps_messages_fourteen_days() {
    const FOURTEEN_DAYS: &str = "1209600";
    let queued = Stack::new(&[]);
    let queue = queued.deployed("EventQueue");
    assert_eq!(
        scalar(&queue["Properties"]["MessageRetentionPeriod"]),
        FOURTEEN_DAYS
    );
    let dlq = queued.deployed("DeadLetterQueue");
    assert_eq!(
        scalar(&dlq["Properties"]["MessageRetentionPeriod"]),
        FOURTEEN_DAYS
    );
    let alarm = queued.deployed("EventQueueAgeAlarm");
    let properties = &alarm["Properties"];
    assert_eq!(properties["Namespace"], "AWS/SQS");
    assert_eq!(properties["MetricName"], "ApproximateAgeOfOldestMessage");
    assert_eq!(
        properties["Dimensions"],
        json!([{"Name": "QueueName", "Value": "{EventQueue.QueueName}"}])
    );
    assert_eq!(properties["Statistic"], "Maximum");
    assert_eq!(properties["AlarmActions"], json!(["{AlertTopic}"]));
    let number = |v: &Value| scalar(v).parse::<u64>().unwrap();
    let threshold = number(&properties["Threshold"]);
    let evaluated = number(&properties["Period"]) * number(&properties["EvaluationPeriods"]);
    // A failed message stays in flight for the visibility timeout and ages meanwhile,
    // so the alarm fires within threshold + one evaluation of the object's arrival:
    // minutes, not MaxReceiveCount x VisibilityTimeout.
    let visibility = number(&queue["Properties"]["VisibilityTimeout"]);
    assert!(threshold + evaluated <= 900, "{threshold} + {evaluated} s");
    assert!(threshold < visibility, "must fire before the first retry");
    assert!(
        threshold > number(&json!(queued.param("FunctionTimeout"))),
        "a healthy invocation must not set it off"
    );
    assert_eq!(
        threshold,
        number(&json!(queued.param("QueueAgeAlarmSeconds")))
    );
    let custom = Stack::new(&[("QueueAgeAlarmSeconds", "1200")]);
    assert_eq!(
        scalar(&custom.deployed("EventQueueAgeAlarm")["Properties"]["Threshold"]),
        "1200"
    );
    // Direct mode has no queue; failures there raise FunctionErrorsAlarm.
    let direct = Stack::new(&[("UseSqsQueue", "false")]);
    assert!(direct.resource("EventQueueAgeAlarm").is_none());
    assert!(direct.resource("FunctionErrorsAlarm").is_some());
}

/// Every place the rendered template refers to the alert topic, as JSON paths.
fn topic_references(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains("{AlertTopic}") => out.push(path.to_string()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                topic_references(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                topic_references(v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn alert_topic_is_encrypted_with_a_key_every_publisher_may_use() {
    for (name, stack) in scenarios() {
        let topic = stack.deployed("AlertTopic");
        assert_eq!(
            topic["Properties"]["KmsMasterKeyId"], "{AlertTopicKey.Arn}",
            "{name}: a customer managed key (alias/aws/sns cannot serve CloudWatch alarms)"
        );
        let key = stack.deployed("AlertTopicKey");
        assert_eq!(key["Properties"]["EnableKeyRotation"], true);
        let key_policy = key["Properties"]["KeyPolicy"]["Statement"]
            .as_array()
            .expect("key policy")
            .clone();
        let allows = |principal: &Value, action: &str| {
            key_policy.iter().any(|s| {
                s["Effect"] == "Allow"
                    && s["Principal"] == *principal
                    && strings(&s["Action"]).iter().any(|a| glob(a, action))
            })
        };

        // Who publishes: find every reference to the topic and account for it.
        let mut references = Vec::new();
        for resource in stack.template["Resources"].as_object().unwrap().keys() {
            if let Some(rendered) = stack.resource(resource) {
                topic_references(&rendered, resource, &mut references);
            }
        }
        let mut alarms = 0;
        for path in &references {
            if path.contains(".AlarmActions[") || path.contains(".OKActions[") {
                alarms += 1;
            } else {
                assert!(
                    [
                        "BucketlogFunction.Properties.Environment.Variables.ALERT_TOPIC_ARN",
                        "AlertEmailSubscription.Properties.TopicArn",
                    ]
                    .contains(&path.as_str())
                        || path.starts_with("FunctionRole.Properties.Policies"),
                    "{name}: {path} uses the alert topic: if it publishes, give it the key"
                );
            }
        }
        assert!(alarms >= 5, "{name}: {references:?}");
        // The alarms publish as CloudWatch, for alarms of this account only.
        let cloudwatch = json!({"Service": "cloudwatch.amazonaws.com"});
        for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
            assert!(
                allows(&cloudwatch, action),
                "{name}: CloudWatch needs {action}"
            );
        }
        let statement = key_policy
            .iter()
            .find(|s| s["Principal"] == cloudwatch)
            .unwrap();
        assert_eq!(
            statement["Condition"]["StringEquals"]["aws:SourceAccount"],
            ACCOUNT
        );
        // The function publishes with its role: IAM grants the key to it (the key policy
        // delegates to the account's IAM policies), through SNS only.
        let account = json!({"AWS": format!("arn:aws:iam::{ACCOUNT}:root")});
        assert!(allows(&account, "kms:Decrypt"), "{name}");
        let grant = stack
            .role_statements()
            .into_iter()
            .find(|s| s["Resource"] == "{AlertTopicKey.Arn}")
            .unwrap_or_else(|| panic!("{name}: the role cannot use the topic's key"));
        let mut actions = strings(&grant["Action"]);
        actions.sort();
        assert_eq!(actions, ["kms:Decrypt", "kms:GenerateDataKey"], "{name}");
        assert_eq!(
            grant["Condition"]["StringEquals"]["kms:ViaService"],
            "sns.us-east-1.amazonaws.com"
        );
        // No S3 notification goes to the topic (it would need the key too).
        if let Some(bucket) = stack.resource("LogBucket") {
            assert!(
                bucket["Properties"]["NotificationConfiguration"]
                    .get("TopicConfigurations")
                    .is_none()
            );
        }
    }
}

/// A Glue `TableInput`'s columns: (name, type), in order.
fn glue_columns(input: &Value) -> Vec<(String, String)> {
    input["StorageDescriptor"]["Columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (scalar(&c["Name"]), scalar(&c["Type"])))
        .collect()
}

/// The log bucket's lifecycle rules that have `key`.
fn lifecycle_rules_with(stack: &Stack, key: &str) -> Vec<Value> {
    stack.deployed("LogBucket")["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get(key).is_some())
        .cloned()
        .collect()
}

#[test]
fn log_bucket_versioning_is_a_parameter_and_old_versions_expire() {
    let rules = |stack: &Stack| lifecycle_rules_with(stack, "NoncurrentVersionExpiration");
    let plain = Stack::new(&[]);
    assert_eq!(plain.param("LogBucketVersioning"), "Disabled");
    assert!(
        plain.deployed("LogBucket")["Properties"]
            .get("VersioningConfiguration")
            .is_none()
    );
    assert!(rules(&plain).is_empty());
    for status in ["Enabled", "Suspended"] {
        let stack = Stack::new(&[
            ("LogBucketVersioning", status),
            ("NoncurrentVersionRetentionDays", "7"),
        ]);
        let bucket = stack.deployed("LogBucket");
        assert_eq!(
            bucket["Properties"]["VersioningConfiguration"]["Status"],
            status
        );
        let rules = rules(&stack);
        assert_eq!(rules.len(), 1, "{status}");
        assert_eq!(
            scalar(&rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"]),
            "7"
        );
        assert_eq!(rules[0]["ExpiredObjectDeleteMarker"], true);
        assert!(rules[0].get("Prefix").is_none(), "the whole bucket");
    }
}

/// The DynamoDB operations `src/adapters/dynamodb.rs` sends, as IAM actions: every
/// `.client` followed by `.operation()` in its source.
fn dynamodb_operations_called() -> BTreeSet<String> {
    let source =
        repo_file("src/adapters/dynamodb.rs") + &repo_file("src/adapters/dynamodb_markers.rs");
    let mut out = BTreeSet::new();
    for (at, _) in source.match_indices(".client") {
        let rest = source[at + ".client".len()..].trim_start();
        let Some(call) = rest.strip_prefix('.') else {
            continue;
        };
        let operation: String = call
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let pascal: String = operation
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        out.insert(format!("dynamodb:{pascal}"));
    }
    out
}

#[test]
fn the_detection_table_is_on_demand_with_ttl_and_the_function_may_touch_only_it() {
    for (name, stack) in scenarios() {
        let table = stack.deployed("DetectionTable");
        assert_eq!(table["Type"], "AWS::DynamoDB::Table", "{name}");
        let p = &table["Properties"];
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{name}");
        assert_eq!(
            p["TimeToLiveSpecification"]["AttributeName"], "expires",
            "{name}"
        );
        assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true, "{name}");
        let keys: Vec<(String, String)> = p["KeySchema"]
            .as_array()
            .expect("KeySchema")
            .iter()
            .map(|k| (scalar(&k["AttributeName"]), scalar(&k["KeyType"])))
            .collect();
        assert_eq!(
            keys,
            [("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())],
            "{name}"
        );
        let types: BTreeMap<String, String> = p["AttributeDefinitions"]
            .as_array()
            .expect("AttributeDefinitions")
            .iter()
            .map(|a| (scalar(&a["AttributeName"]), scalar(&a["AttributeType"])))
            .collect();
        assert_eq!(types["pk"], "S", "{name}");
        assert_eq!(types["sk"], "N", "{name}");
        // The function reads the table's name, and only the detection policy grants
        // DynamoDB actions, on that table alone.
        assert_eq!(
            stack.function_env()["DETECTION_TABLE"],
            "{DetectionTable}",
            "{name}"
        );
        assert_eq!(
            stack.function_config().detection_table.as_deref(),
            Some("bucketlog-DetectionTable-ABC123")
        );
        for statement in stack.role_statements() {
            for action in strings(&statement["Action"]) {
                assert!(
                    !action.starts_with("dynamodb:"),
                    "{name}: {action} in the role"
                );
            }
        }
        let policy = stack.deployed("DetectionTablePolicy");
        assert_eq!(policy["Properties"]["RoleName"], "{FunctionRole}", "{name}");
        let statements = policy["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("Statement")
            .clone();
        let mut actions = BTreeSet::new();
        for statement in &statements {
            assert_eq!(statement["Effect"], "Allow", "{name}");
            assert_eq!(
                statement["Resource"], "{DetectionTable.Arn}",
                "{name}: DynamoDB actions only on the detection table"
            );
            actions.extend(strings(&statement["Action"]));
        }
        // Exactly the operations the adapter calls: a missing one fails only in AWS.
        let expected = dynamodb_operations_called();
        assert!(expected.contains("dynamodb:GetItem"), "{expected:?}");
        assert_eq!(actions, expected, "{name}");
    }
}

#[test]
fn an_optional_log_group_subscription_invokes_the_function_and_keeps_its_failures() {
    let plain = Stack::new(&[]);
    assert!(plain.resource("LogGroupSubscription").is_none());
    assert!(plain.resource("LogGroupInvokePermission").is_none());

    let group = "/aws/s3/server-access-logs";
    let subscribed = Stack::new(&[("SubscribedLogGroupName", group)]);
    let filter = subscribed.deployed("LogGroupSubscription");
    assert_eq!(filter["Properties"]["LogGroupName"], group);
    assert_eq!(filter["Properties"]["FilterPattern"], "", "every event");
    assert_eq!(
        filter["Properties"]["DestinationArn"],
        "{BucketlogFunction.Arn}"
    );
    let permission = subscribed.deployed("LogGroupInvokePermission");
    assert_eq!(permission["Properties"]["Principal"], "logs.amazonaws.com");
    assert_eq!(permission["Properties"]["SourceAccount"], ACCOUNT);
    assert_eq!(
        permission["Properties"]["SourceArn"],
        json!(format!(
            "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"
        ))
    );
    // Subscriptions invoke asynchronously: even with the S3 queue, a batch that still
    // fails after Lambda's retries goes to the dead-letter queue, and the role may send it.
    let config = subscribed.deployed("AsyncInvokeConfig");
    assert_eq!(
        config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
        "{DeadLetterQueue.Arn}"
    );
    let role = subscribed.deployed("FunctionRole").to_string();
    assert!(role.contains("SendFailedEvents"), "{role}");
    // The function writes batches to the log bucket: OUTPUT_BUCKET is always set.
    let function = subscribed.deployed("BucketlogFunction");
    assert_eq!(
        function["Properties"]["Environment"]["Variables"]["OUTPUT_BUCKET"],
        LOG_BUCKET
    );
}

#[test]
fn an_optional_batch_operations_role_may_invoke_the_function_and_nothing_more() {
    assert!(Stack::new(&[]).resource("BatchOperationsRole").is_none());
    let stack = Stack::new(&[("CreateBatchOperationsRole", "true")]);
    let role = stack.deployed("BatchOperationsRole");
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["Service"],
        "batchoperations.s3.amazonaws.com"
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT
    );
    let statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let invoke = &statements[0];
    assert_eq!(invoke["Action"], "lambda:InvokeFunction");
    assert_eq!(invoke["Resource"], "{BucketlogFunction.Arn}");
    let reports = &statements[1];
    assert_eq!(
        reports["Resource"],
        json!(format!("arn:aws:s3:::{LOG_BUCKET}/batch-operations/*"))
    );
    // Nothing in the role can write raw logs, outputs or state.
    for statement in &statements {
        let resource = scalar(&statement["Resource"]);
        assert!(
            !resource.contains("/raw/")
                && !resource.contains("/curated/")
                && !resource.contains("/state/"),
            "{statement}"
        );
    }
    let outputs = stack.eval(&stack.template["Outputs"]).unwrap();
    assert_eq!(
        outputs["BatchOperationsRoleArn"]["Value"],
        "{BatchOperationsRole.Arn}"
    );
}

// --- The lake's compaction --------------------------------------------------------------

#[test]
fn the_compaction_function_is_the_same_code_on_a_schedule_one_run_at_a_time() {
    let stack = Stack::new(&[]);
    let main = stack.deployed("BucketlogFunction");
    let compactor = stack.deployed("CompactionFunction");
    assert_eq!(compactor["Metadata"], main["Metadata"], "the same build");
    let p = &compactor["Properties"];
    for property in ["CodeUri", "Handler", "Runtime", "Architectures"] {
        assert_eq!(p[property], main["Properties"][property], "{property}");
    }
    assert_eq!(p["Role"], COMPACTION_ROLE);
    assert_eq!(
        p["LoggingConfig"]["LogGroup"], "{CompactionLogGroup}",
        "its own log group"
    );
    // Its own memory: the sort buffer and a row group, not the main function's 128 MB.
    assert_eq!(scalar(&p["MemorySize"]), "512");
    assert_ne!(p["MemorySize"], main["Properties"]["MemorySize"]);
    assert_eq!(
        scalar(&p["EphemeralStorage"]["Size"]),
        stack.param("LakeCompactionEphemeralStorage")
    );
    assert_eq!(scalar(&p["Timeout"]), "900");
    assert_eq!(
        scalar(&p["ReservedConcurrentExecutions"]),
        "1",
        "one compactor at a time"
    );
    let bigger = Stack::new(&[("LakeCompactionMemorySize", "1024")]);
    assert_eq!(
        scalar(&bigger.deployed("CompactionFunction")["Properties"]["MemorySize"]),
        "1024"
    );
    assert_eq!(
        scalar(&bigger.deployed("BucketlogFunction")["Properties"]["MemorySize"]),
        "128"
    );

    // The schedule's payload is what the function reads as a compaction.
    let events = p["Events"].as_object().expect("Events");
    assert_eq!(events.len(), 1, "{events:?}");
    let schedule = events.values().next().unwrap();
    assert_eq!(schedule["Type"], "ScheduleV2");
    let sp = &schedule["Properties"];
    assert_eq!(sp["ScheduleExpression"], "rate(15 minutes)");
    assert_eq!(
        sp["OmitName"], true,
        "two stacks in one account must not collide"
    );
    assert_eq!(scalar(&sp["RetryPolicy"]["MaximumRetryAttempts"]), "0");
    let input: Value = serde_json::from_str(&scalar(&sp["Input"])).expect("Input is JSON");
    assert_eq!(
        bucketlog::event::parse_invocation(&input),
        Ok(bucketlog::event::Invocation::Compact),
        "{input}"
    );
    let hourly = Stack::new(&[("LakeCompactionSchedule", "cron(5 * * * ? *)")]);
    let events = &hourly.deployed("CompactionFunction")["Properties"]["Events"];
    assert_eq!(
        events["Schedule"]["Properties"]["ScheduleExpression"],
        "cron(5 * * * ? *)"
    );

    // Neither a failed nor a throttled run is retried or kept: the next run is the retry.
    let invoke = stack.deployed("CompactionInvokeConfig");
    assert_eq!(invoke["Properties"]["FunctionName"], "{CompactionFunction}");
    assert_eq!(scalar(&invoke["Properties"]["MaximumRetryAttempts"]), "0");
    assert_eq!(
        scalar(&invoke["Properties"]["MaximumEventAgeInSeconds"]),
        "60"
    );

    // An empty schedule: no compaction at all, and nothing names its role.
    let off = Stack::new(&[("LakeCompactionSchedule", "")]);
    for resource in [
        "CompactionFunction",
        "CompactionRole",
        "CompactionLogGroup",
        "CompactionInvokeConfig",
        "CompactionErrorsAlarm",
    ] {
        assert!(off.resource(resource).is_none(), "{resource}");
    }
    assert!(off.resource("BucketlogFunction").is_some());
    // Outputs naming its resources exist only with them.
    for output in ["CompactionFunctionName", "CompactionRoleArn"] {
        assert_eq!(
            off.template["Outputs"][output]["Condition"], "CompactLake",
            "{output}"
        );
    }
}

#[test]
fn the_compactor_reads_the_same_prefixes_and_lake_settings_as_the_function() {
    let tagging = (
        "tagging compacted objects",
        Stack::new(&[("CuratedExpireDays", "30")]),
    );
    let settled = (
        "settle 45 minutes",
        Stack::new(&[("LakeSettleMinutes", "45")]),
    );
    for (name, stack) in scenarios().into_iter().chain([tagging, settled]) {
        let main = stack.function_config();
        let compactor = stack.config_of("CompactionFunction");
        assert_eq!(
            compactor.output_bucket.as_deref(),
            Some(LOG_BUCKET),
            "{name}"
        );
        assert_eq!(
            compactor.output_prefixes(),
            main.output_prefixes(),
            "{name}"
        );
        assert_eq!(compactor.raw_prefix, main.raw_prefix, "{name}");
        assert_eq!(compactor.lake, main.lake, "{name}");
        assert_eq!(compactor.lake.prefix, stack.param("LakePrefix"), "{name}");
        assert_eq!(
            compactor.lake.settle_minutes.to_string(),
            stack.param("LakeSettleMinutes"),
            "{name}"
        );
        let expire = stack.param("CuratedExpireDays") != "0";
        assert_eq!(
            compactor.lake.tag_compacted, expire,
            "{name}: tags iff they expire"
        );
        // It neither alerts nor needs CloudWatch permissions for its metrics.
        let env = stack.env_of("CompactionFunction");
        assert!(!env.contains_key("ALERT_TOPIC_ARN"), "{name}");
        assert_eq!(env["METRICS_MODE"], "emf", "{name}");
    }
}

#[test]
fn compaction_iam_reads_curated_and_writes_only_the_lake_and_its_state() {
    let tagging = (
        "tagging compacted objects",
        Stack::new(&[("CuratedExpireDays", "30")]),
    );
    for (name, stack) in scenarios().into_iter().chain([tagging]) {
        let bucket_arn = format!("arn:aws:s3:::{LOG_BUCKET}");
        let curated = stack.object_arn("CuratedPrefix");
        let lake = stack.object_arn("LakePrefix");
        let lake_state = format!("{bucket_arn}/{}lake/*", stack.param("StatePrefix"));
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for statement in stack.statements_of("CompactionRole") {
            assert_eq!(statement["Effect"], "Allow", "{name}: {statement}");
            assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none());
            let resources = strings(&statement["Resource"]);
            for action in strings(&statement["Action"]) {
                assert!(!action.contains('*'), "{name}: wildcard action {action}");
                assert!(!resources.iter().any(|r| r == "*"), "{name}: {action} on *");
                if action.starts_with("dynamodb:") {
                    // Only the dirty marks' items: their partition key, and no other.
                    assert_eq!(resources, ["{DetectionTable.Arn}"], "{name}: {action}");
                    let keys = strings(
                        &statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
                    );
                    assert_eq!(
                        keys,
                        [format!(
                            "d#{LOG_BUCKET}/{}lake/dirty/",
                            stack.param("StatePrefix")
                        )],
                        "{name}: {action}"
                    );
                }
                if action == "s3:ListBucket" {
                    assert_eq!(resources, std::slice::from_ref(&bucket_arn), "{name}");
                    let listed: BTreeSet<String> =
                        strings(&statement["Condition"]["StringLike"]["s3:prefix"])
                            .into_iter()
                            .collect();
                    let expected: BTreeSet<String> = [
                        format!("{}*", stack.param("CuratedPrefix")),
                        format!("{}*", stack.param("LakePrefix")),
                        format!("{}lake/*", stack.param("StatePrefix")),
                    ]
                    .into_iter()
                    .collect();
                    assert_eq!(listed, expected, "{name}: ListBucket's s3:prefix");
                }
                granted
                    .entry(action)
                    .or_default()
                    .extend(resources.iter().cloned());
            }
        }
        let on = |action: &str| granted.get(action).cloned().unwrap_or_default();
        let set = |items: &[&String]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

        assert_eq!(on("s3:GetObject"), set(&[&curated, &lake_state]), "{name}");
        assert_eq!(on("s3:PutObject"), set(&[&lake, &lake_state]), "{name}");
        assert_eq!(on("s3:DeleteObject"), set(&[&lake, &lake_state]), "{name}");
        assert_eq!(on("s3:AbortMultipartUpload"), set(&[&lake_state]), "{name}");
        let tags = stack.param("CuratedExpireDays") != "0";
        if tags {
            assert_eq!(on("s3:PutObjectTagging"), set(&[&curated]), "{name}");
        } else {
            assert!(!granted.contains_key("s3:PutObjectTagging"), "{name}");
        }
        let allowed = [
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "s3:GetObject",
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:PutObjectTagging",
            "s3:ListBucket",
            "dynamodb:Query",
            "dynamodb:DeleteItem",
        ];
        // What `Compactor::run` asks of the table: `dirty_marks` (a Query) and
        // `clear_dirty_mark` (a conditional DeleteItem), in
        // src/adapters/dynamodb_markers.rs.
        assert!(granted.contains_key("dynamodb:Query"), "{name}");
        assert!(granted.contains_key("dynamodb:DeleteItem"), "{name}");
        for action in granted.keys() {
            assert!(
                allowed.contains(&action.as_str()),
                "{name}: unexpected {action}"
            );
        }
        assert_eq!(
            on("logs:PutLogEvents"),
            set(&[&"{CompactionLogGroup.Arn}".to_string()]),
            "{name}"
        );

        // Every write and delete lies under the lake prefix or the lake's state, and so
        // never under raw (no trigger), curated, rejected, alerts or the other state.
        let lake_prefix = stack.param("LakePrefix");
        let lake_state_prefix = format!("{}lake/", stack.param("StatePrefix"));
        for action in ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"] {
            for resource in on(action) {
                let key = resource
                    .strip_prefix(&format!("{bucket_arn}/"))
                    .unwrap_or_else(|| panic!("{name}: {action} outside the log bucket"))
                    .trim_end_matches('*');
                assert!(
                    key.starts_with(&lake_prefix) || key.starts_with(&lake_state_prefix),
                    "{name}: {action} on {resource}"
                );
                for other in [
                    "RawPrefix",
                    "CuratedPrefix",
                    "RejectedPrefix",
                    "AlertsPrefix",
                ] {
                    assert!(
                        !overlaps(key, &stack.param(other)),
                        "{name}: {action} on {resource} overlaps {other}"
                    );
                }
            }
        }
    }
}

#[test]
fn compacted_curated_objects_expire_only_when_asked_and_only_once_tagged() {
    let tagged_rules = |stack: &Stack| lifecycle_rules_with(stack, "TagFilters");
    let plain = Stack::new(&[]);
    assert_eq!(plain.param("CuratedExpireDays"), "0");
    assert!(tagged_rules(&plain).is_empty());
    assert!(!plain.function_config().lake.tag_compacted);

    let stack = Stack::new(&[("CuratedExpireDays", "30")]);
    let rules = tagged_rules(&stack);
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule["Status"], "Enabled");
    assert_eq!(rule["Prefix"], json!(stack.param("CuratedPrefix")));
    assert_eq!(scalar(&rule["ExpirationInDays"]), "30");
    let (key, value) = bucketlog::lake::compact::COMPACTED_TAG;
    assert_eq!(
        rule["TagFilters"],
        json!([{"Key": key, "Value": value}]),
        "the tag the compactor sets"
    );
    // The compactor tags what it compacted, and may.
    assert!(stack.config_of("CompactionFunction").lake.tag_compacted);
    assert!(stack.function_config().lake.tag_compacted);
    // CuratedRetentionDays still expires every curated object, compacted or not.
    let untagged = stack.deployed("LogBucket")["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["Id"] == "expire-curated" && r.get("TagFilters").is_none());
    assert!(untagged);
    // Another principal cannot forge the tag: the bucket policy denies it.
    let object = object(&format!(
        "{}bucket=b/dt=2026-11-20/hour=14/x.ndjson.gz",
        stack.param("CuratedPrefix")
    ));
    let forge = Request::new(
        Caller::Iam(OTHER_ROLE),
        "s3:PutObjectTagging",
        object.clone(),
    );
    assert_eq!(stack.judge(&forge), Verdict::Denied);
    let tag = Request::new(Caller::Iam(COMPACTION_ROLE), "s3:PutObjectTagging", object);
    assert_eq!(stack.judge(&tag), Verdict::Silent);
}
