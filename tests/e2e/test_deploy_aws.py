"""The AWS deploy template (deploy/aws/): lint-clean, a config Herald accepts, least privilege.

Nothing here talks to AWS. cfn-lint checks every template against the CloudFormation resource
schemas (and for dependency cycles). A small evaluator then resolves the intrinsic functions
the template uses for a given set of parameters, the way CloudFormation would, so the tests can
check what a deployed stack gets: the HERALD_CONFIG_TOML that `herald check` must accept, the
IAM statements, and the trigger wiring of each variant.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import HERALD_BIN

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "aws"
TEMPLATES = sorted(DEPLOY_DIR.glob("*.yaml"))
TEMPLATE = DEPLOY_DIR / "herald.yaml"

ACCOUNT = "123456789012"
REGION = "eu-west-1"
STACK = "uploads-herald"

# Every parameter set, then the two shapes of the filter and link settings.
REQUIRED = {
    "BucketName": "acme-uploads",
    "Recipients": "legal@example.com,Finance Team <finance@example.com>",
    "SenderAddress": "Uploads <uploads@example.com>",
    "SenderIdentity": "example.com",
    "CodeBucket": "acme-artifacts",
    "CodeKey": "herald/bootstrap-abc123.zip",
}
FILTERED_SQS = {**REQUIRED, "Trigger": "sqs", "KeyPrefix": "incoming/", "KeySuffix": ".pdf"}
UNFILTERED_DIRECT = {**REQUIRED, "Trigger": "direct", "DownloadLinkSecs": "0"}
VARIANTS = {"filtered-sqs": FILTERED_SQS, "unfiltered-direct": UNFILTERED_DIRECT}


# ---- Loading and evaluating a template ------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation's short tags into their long JSON form."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _tag)


def load(path):
    return yaml.load(path.read_text(), Loader=CfnLoader)


def physical_id(resource):
    return f"{STACK}-{resource}-1Q2W3E4R5T6Y"


NO_VALUE = object()
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::NoValue": NO_VALUE,
}


class Stack:
    """A template with parameters applied: evaluates intrinsics as CloudFormation would.

    A resource's Ref becomes a generated name like CloudFormation's (`uploads-herald-Name-X1`)
    and its GetAtt `<Name.Attribute>`, standing in for what CloudFormation would fill in.
    """

    def __init__(self, template, parameters):
        self.template = template
        self.params = {}
        for name, spec in template["Parameters"].items():
            value = parameters.get(name, spec.get("Default"))
            assert value is not None, f"sample parameters lack {name}"
            value = str(value)
            if spec["Type"] == "CommaDelimitedList":
                value = value.split(",")
            self.params[name] = value

    def condition(self, name):
        return self.eval(self.template["Conditions"][name])

    def resources(self):
        """The resources this stack would create, properties evaluated."""
        created = {}
        for name, resource in self.template["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            created[name] = {**resource, "Properties": self.eval(resource.get("Properties", {}))}
        return created

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        assert name in self.template["Resources"], f"Ref to unknown {name}"
        return physical_id(name)

    def sub(self, text, variables):
        def replace(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name:
                return f"<{name}>"
            value = self.ref(name)
            assert isinstance(value, str), f"${{{name}}} is not a string"
            return value
        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def eval(self, node):
        if isinstance(node, list):
            return [v for v in (self.eval(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key in INTRINSICS:
                return INTRINSICS[key](self, arg)
        return {k: v for k, v in ((k, self.eval(v)) for k, v in node.items()) if v is not NO_VALUE}


def _sub(stack, arg):
    if isinstance(arg, str):
        return stack.sub(arg, {})
    text, variables = arg
    return stack.sub(text, {k: stack.eval(v) for k, v in variables.items()})


INTRINSICS = {
    "Ref": lambda s, a: s.ref(a),
    "Condition": lambda s, a: s.condition(a),
    "Fn::GetAtt": lambda s, a: f"<{a[0]}.{a[1]}>",
    "Fn::If": lambda s, a: s.eval(a[1] if s.condition(a[0]) else a[2]),
    "Fn::Equals": lambda s, a: s.eval(a[0]) == s.eval(a[1]),
    "Fn::Not": lambda s, a: not s.eval(a[0]),
    "Fn::Or": lambda s, a: any(s.eval(x) for x in a),
    "Fn::And": lambda s, a: all(s.eval(x) for x in a),
    "Fn::Join": lambda s, a: s.eval(a[0]).join(s.eval(a[1])),
    "Fn::Sub": _sub,
}


@pytest.fixture(scope="module")
def template():
    return load(TEMPLATE)


def herald_config_toml(stack):
    function = stack.resources()["Function"]
    return function["Properties"]["Environment"]["Variables"]["HERALD_CONFIG_TOML"]


def role_statements(stack):
    role = stack.resources()["FunctionRole"]["Properties"]
    assert "ManagedPolicyArns" not in role, "only the inline policy, which this test reads"
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


# ---- cfn-lint -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_nothing(path):
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    # Informational checks too: they are the ones about data kept or lost on deletion.
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--include-checks", "I", "--", str(path)],
        capture_output=True, text=True, timeout=300,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_there_is_a_template():
    assert TEMPLATE in TEMPLATES


# ---- The config Herald runs on --------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_config_toml_is_what_the_parameters_say(template, variant):
    params = VARIANTS[variant]
    config = tomllib.loads(herald_config_toml(Stack(template, params)))

    assert config["sender"] == {"type": "ses", "from": "Uploads <uploads@example.com>"}
    assert config["dedupe"] == {
        "type": "dynamodb", "table": physical_id("DedupeTable"), "retention_days": 14,
    }
    [rule] = config["rule"]
    assert rule["bucket"] == "acme-uploads"
    assert rule["to"] == ["legal@example.com", "Finance Team <finance@example.com>"]
    if variant == "filtered-sqs":
        assert (rule["prefix"], rule["suffix"]) == ("incoming/", ".pdf")
        assert rule["download_link_secs"] == 86400
    else:
        assert not {"prefix", "suffix", "download_link_secs"} & rule.keys()


@pytest.mark.parametrize("variant", VARIANTS)
def test_herald_check_accepts_the_config(template, variant, tmp_path):
    toml_text = herald_config_toml(Stack(template, VARIANTS[variant]))
    # As on Lambda: the region from the platform, no config file beside the process.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_REGION": REGION,
           "HERALD_CONFIG_TOML": toml_text}
    result = subprocess.run(
        [HERALD_BIN, "check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"{toml_text}\n{result.stdout}{result.stderr}"
    # An older herald ignores the variable and checks its built-in example instead.
    assert "HERALD_CONFIG_TOML" in result.stdout, result.stdout


# ---- Least privilege ------------------------------------------------------------------------

SES_IDENTITY = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/example.com"


@pytest.mark.parametrize("variant", VARIANTS)
def test_role_reaches_only_this_stacks_identity_table_bucket_and_queues(template, variant):
    stack = Stack(template, VARIANTS[variant])
    granted = {}
    for statement in role_statements(stack):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        assert "NotResource" not in statement
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        resource = statement["Resource"]
        assert isinstance(resource, str), "one resource per statement"
        for action in actions:
            assert "*" not in action
            granted.setdefault(action, set()).add(resource)

    expected = {
        "logs:CreateLogStream": {"<LogGroup.Arn>"},
        "logs:PutLogEvents": {"<LogGroup.Arn>"},
        "ses:SendRawEmail": {SES_IDENTITY},
        "ses:SendEmail": {SES_IDENTITY},
        "dynamodb:GetItem": {"<DedupeTable.Arn>"},
        "dynamodb:PutItem": {"<DedupeTable.Arn>"},
        "dynamodb:UpdateItem": {"<DedupeTable.Arn>"},
        "dynamodb:DeleteItem": {"<DedupeTable.Arn>"},
    }
    if variant == "filtered-sqs":
        # Only the objects that can trigger an email, so only what a link can point at.
        expected["s3:GetObject"] = {"arn:aws:s3:::acme-uploads/incoming/*"}
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            expected[action] = {"<EventQueue.Arn>"}
    else:
        # No download links, so no reading; Lambda records async failures with this role.
        expected["sqs:SendMessage"] = {"<DeadLetterQueue.Arn>"}
    assert granted == expected


def test_ses_identity_may_be_an_email_address(template):
    stack = Stack(template, {**REQUIRED, "SenderIdentity": "uploads@example.com"})
    [ses] = [s for s in role_statements(stack) if "ses:SendRawEmail" in s["Action"]]
    assert ses["Resource"] == f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/uploads@example.com"


def test_only_s3_may_trigger_and_only_from_this_bucket(template):
    direct = Stack(template, UNFILTERED_DIRECT).resources()
    permission = direct["InvokePermission"]["Properties"]
    assert permission["Principal"] == "s3.amazonaws.com"
    assert permission["SourceArn"] == "arn:aws:s3:::acme-uploads"
    assert permission["SourceAccount"] == ACCOUNT

    sqs = Stack(template, FILTERED_SQS).resources()
    [statement] = sqs["EventQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == "<EventQueue.Arn>"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": "arn:aws:s3:::acme-uploads"},
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }


# ---- Trigger wiring -------------------------------------------------------------------------

def test_sqs_variant_wiring(template):
    created = Stack(template, FILTERED_SQS).resources()
    assert not {"InvokePermission", "AsyncFailures"} & created.keys()

    notify = created["UploadBucket"]["Properties"]["NotificationConfiguration"]
    assert notify == {"QueueConfigurations": [{
        "Event": "s3:ObjectCreated:*",
        "Queue": "<EventQueue.Arn>",
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "incoming/"},
                                       {"Name": "suffix", "Value": ".pdf"}]}},
    }]}
    queue = created["EventQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == "<DeadLetterQueue.Arn>"
    # Lambda's advice: visibility at least six times the function timeout.
    assert queue["VisibilityTimeout"] >= 6 * created["Function"]["Properties"]["Timeout"]
    mapping = created["EventSource"]["Properties"]
    assert mapping["EventSourceArn"] == "<EventQueue.Arn>"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_direct_variant_wiring(template):
    created = Stack(template, UNFILTERED_DIRECT).resources()
    assert not {"EventQueue", "EventQueuePolicy", "EventSource"} & created.keys()

    notify = created["UploadBucket"]["Properties"]["NotificationConfiguration"]
    assert notify == {"LambdaConfigurations": [
        {"Event": "s3:ObjectCreated:*", "Function": "<Function.Arn>"},
    ]}
    failures = created["AsyncFailures"]["Properties"]
    assert failures["DestinationConfig"]["OnFailure"]["Destination"] == "<DeadLetterQueue.Arn>"


@pytest.mark.parametrize("variant", VARIANTS)
def test_bucket_waits_for_the_grant_its_notification_needs(template, variant):
    stack = Stack(template, VARIANTS[variant])
    created = stack.resources()
    assert created["UploadBucket"]["DependsOn"] == "NotificationTargetReady"
    grant = stack.eval(template["Resources"]["NotificationTargetReady"]["Metadata"]["Grant"])
    needed = "EventQueuePolicy" if variant == "filtered-sqs" else "InvokePermission"
    assert grant == physical_id(needed) and needed in created


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_function_runs_the_bootstrap_zip(template, architecture):
    stack = Stack(template, {**REQUIRED, "Architecture": architecture})
    function = stack.resources()["Function"]["Properties"]
    assert (function["Runtime"], function["Handler"]) == ("provided.al2023", "bootstrap")
    assert function["Architectures"] == [architecture]
    assert function["Code"] == {"S3Bucket": "acme-artifacts",
                                "S3Key": "herald/bootstrap-abc123.zip"}


def test_a_herald_toml_in_the_zip_replaces_the_built_config_only_when_named(template):
    def variables(**extra):
        function = Stack(template, {**REQUIRED, **extra}).resources()["Function"]
        return function["Properties"]["Environment"]["Variables"]

    assert "HERALD_CONFIG" not in variables()
    # HERALD_CONFIG is read before HERALD_CONFIG_TOML, so the zipped file wins when named.
    assert variables(ConfigFileInZip="herald.toml")["HERALD_CONFIG"] == "/var/task/herald.toml"


def test_template_holds_no_secrets():
    text = TEMPLATE.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|password\s*=", text, re.I)


def test_parameter_patterns_keep_toml_strings_intact(template):
    # CloudFormation enforces these; a quote or backslash would end or escape a TOML string.
    params = template["Parameters"]
    for name in ("KeyPrefix", "KeySuffix", "SenderAddress", "Recipients"):
        pattern = re.compile(params[name]["AllowedPattern"])
        assert not pattern.match('a"b@example.com'), name
        assert not pattern.match("a\\b@example.com"), name
    recipient = re.compile(params["Recipients"]["AllowedPattern"])
    assert recipient.match("Finance Team <finance@example.com>")
    assert not recipient.match(" finance@example.com")
