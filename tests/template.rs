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
        self.deployed("BucketlogFunction")["Properties"]["Environment"]["Variables"]
            .as_object()
            .expect("Environment.Variables")
            .iter()
            .map(|(k, v)| (k.clone(), scalar(v)))
            .collect()
    }

    /// The function's configuration, parsed by the function's own code.
    fn function_config(&self) -> Config {
        let mut env = self.function_env();
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
            .unwrap_or_else(|e| panic!("the template's environment is refused: {e}"))
    }

    fn role_statements(&self) -> Vec<Value> {
        let role = self.deployed("FunctionRole");
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
            ]),
        ),
    ]
}

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
    assert_eq!(stack.param("OutputCompression"), "gzip");
    assert_eq!(stack.param("MetricsNamespace"), "S3AccessLogs");
}

#[test]
fn function_environment_is_a_valid_configuration_that_matches_the_parameters() {
    for (name, stack) in scenarios() {
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
        assert_eq!(config.output_bucket.as_deref(), Some(LOG_BUCKET), "{name}");
        let env = stack.function_env();
        assert_eq!(
            env["METRICS_NAMESPACE"],
            stack.param("MetricsNamespace"),
            "{name}"
        );
        assert_eq!(env["METRICS_MODE"], stack.param("MetricsMode"), "{name}");
        assert_eq!(env["ALERT_TOPIC_ARN"], "{AlertTopic}", "{name}");
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

        assert_eq!(
            on("s3:GetObject"),
            set(&[&raw, &state]),
            "{name}: GetObject"
        );
        let writable: BTreeSet<String> = outputs.iter().chain([&state]).cloned().collect();
        assert_eq!(on("s3:PutObject"), writable, "{name}: PutObject");
        assert_eq!(
            on("s3:AbortMultipartUpload"),
            outputs.iter().cloned().collect(),
            "{name}: AbortMultipartUpload"
        );
        for action in granted.keys().filter(|a| a.starts_with("s3:")) {
            assert!(
                [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListBucket"
                ]
                .contains(&action.as_str()),
                "{name}: unexpected {action}"
            );
            for resource in &granted[action] {
                assert!(
                    resource == &bucket_arn || resource.starts_with(&format!("{bucket_arn}/")),
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

    let rules_of = |stack: &Stack| -> BTreeMap<String, String> {
        let bucket = stack.deployed("LogBucket");
        bucket["Properties"]["LifecycleConfiguration"]["Rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r.get("ExpirationInDays").is_some())
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
    // Markers expire with the raw logs; the rest of the state (the baseline) never does.
    let state = stack.param("StatePrefix");
    let state_rules: Vec<&String> = rules.keys().filter(|p| p.starts_with(&state)).collect();
    assert_eq!(state_rules, [&format!("{state}processed/")]);

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
    ] {
        assert!(
            watched.contains(metric),
            "no alarm on {metric}: {watched:?}"
        );
    }
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
}

/// The curated-record field names from SCHEMA.md: every table row before "Rejected lines".
fn schema_fields() -> Vec<String> {
    let schema = repo_file("SCHEMA.md");
    let curated = schema.split("## Rejected lines").next().expect("SCHEMA.md");
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

        let columns: Vec<(String, String)> = input["StorageDescriptor"]["Columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (scalar(&c["Name"]), scalar(&c["Type"])))
            .collect();
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
fn athena_named_queries_filter_on_the_injected_bucket_partition() {
    let stack = Stack::new(&[]);
    let queries = stack.resources_of_type("AWS::Athena::NamedQuery");
    assert!(
        queries.len() >= 4,
        "top requesters, 403s by IP, largest downloads, anonymous"
    );
    let table = format!(
        "\"{}\".\"{}\"",
        stack.param("GlueDatabaseName"),
        stack.param("GlueTableName")
    );
    for (name, query) in queries {
        let sql = scalar(&query["Properties"]["QueryString"]);
        assert!(sql.contains(&table), "{name}: {sql}");
        assert!(
            sql.contains("WHERE bucket = "),
            "{name}: must filter on the bucket partition"
        );
        assert!(sql.contains("AND dt >= "), "{name}: should prune by date");
    }
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
    for (key, value) in &env {
        if key == "OUTPUT_BUCKET" || key == "ALERT_TOPIC_ARN" {
            continue; // account-specific: given at deploy time
        }
        assert_eq!(
            &setting(key),
            value,
            "{key} in [package.metadata.lambda.deploy.env]"
        );
    }
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
        let expected: BTreeSet<String> = [
            "dynamodb:BatchGetItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(actions, expected, "{name}");
    }
}
