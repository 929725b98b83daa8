"""Policy exposure and encryption classification: every documented Principal form, hostile documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import access
from exporter.access import change_encryption, change_exposure, policy_exposure

OWNER = "111122223333"
OTHER = "444455556666"


def pol(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": "sqs:SendMessage", "Resource": "*"}
    if condition:
        s["Condition"] = condition
    return s


@pytest.mark.parametrize(
    ("policy", "exposure"),
    [
        (pol(allow("*")), "public"),
        (pol(allow({"AWS": "*"})), "public"),
        (pol(allow({"AWS": ["*"]})), "public"),
        (pol(allow("*", {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:eu-west-1:111122223333:t"}})), "account"),
        (pol(allow({"AWS": OTHER})), "cross_account"),
        (pol(allow({"AWS": f"arn:aws:iam::{OTHER}:root"})), "cross_account"),
        (pol(allow({"AWS": [f"arn:aws:iam::{OWNER}:role/r", f"arn:aws:iam::{OTHER}:role/x"]})), "cross_account"),
        (pol(allow({"AWS": f"arn:aws:iam::{OWNER}:role/r"})), "account"),
        (pol(allow({"AWS": OWNER})), "account"),
        (pol(allow({"Service": "sns.amazonaws.com"})), "account"),
        (pol(allow({"Service": ["sns.amazonaws.com", "events.amazonaws.com"]})), "account"),
        (pol(allow({"Federated": "cognito-identity.amazonaws.com"})), "cross_account"),
        (pol(allow({"Federated": f"arn:aws:iam::{OWNER}:saml-provider/okta"})), "account"),
        (pol({"Effect": "Deny", "Principal": "*", "Action": "sqs:*"}), "account"),
        (pol({"Effect": "Allow", "NotPrincipal": {"AWS": OWNER}, "Action": "sqs:*"}), "public"),
        (pol(allow({"AWS": OTHER}), allow("*")), "public"),
        (json.dumps({"Statement": allow({"AWS": OTHER})}), "cross_account"),  # a single statement, not a list
        ("", "removed"),
        ("   ", "removed"),
        (json.dumps({"Version": "2012-10-17", "Statement": []}), "removed"),
        (json.dumps({"Version": "2012-10-17"}), "removed"),
        ("{not json", "unknown"),
        ("[]", "unknown"),
        ("null", "unknown"),
        (json.dumps({"Statement": ["x"]}), "unknown"),
        (pol(allow(17)), "unknown"),
        (pol(allow({"AWS": [1, 2]})), "unknown"),
        ("[" * 5000 + "]" * 5000, "unknown"),
        (json.dumps({"Statement": [allow({"AWS": OTHER})], "pad": "x" * (access.MAX_POLICY_BYTES + 1)}), "unknown"),
    ],
)
def test_policy_exposure(policy: str, exposure: str) -> None:
    assert policy_exposure(policy, OWNER) == exposure


def test_deeply_nested_policy_is_unknown_not_a_crash() -> None:
    deep = '{"AWS":' * 3000 + '"*"' + "}" * 3000
    text = '{"Statement":[{"Effect":"Allow","Principal":' + deep + "}]}"
    assert policy_exposure(text, OWNER) == "unknown"
    wide = pol(*[allow({"AWS": f"arn:aws:iam::{OWNER}:role/r{i}"}) for i in range(3000)])
    assert policy_exposure(wide, OWNER) == "unknown"  # over the size cap
    assert (
        policy_exposure(pol(*[allow({"AWS": f"arn:aws:iam::{OWNER}:role/r{i}"}) for i in range(200)]), OWNER)
        == "account"
    )


@pytest.mark.parametrize(
    ("event", "params", "exposure"),
    [
        ("AddPermission", {"AWSAccountIds": [OTHER], "actions": ["SendMessage"], "label": "l"}, "cross_account"),
        ("AddPermission", {"aWSAccountIds": [OWNER], "actions": ["SendMessage"], "label": "l"}, "account"),
        ("AddPermission", {"label": "l"}, "unknown"),
        ("RemovePermission", {"label": "l"}, "removed"),
        ("SetQueueAttributes", {"attributes": {"Policy": pol(allow("*"))}}, "public"),
        ("SetQueueAttributes", {"attributes": {"Policy": ""}}, "removed"),
        ("SetQueueAttributes", {"attributes": {"VisibilityTimeout": "100"}}, None),
        ("CreateQueue", {"queueName": "q", "attributes": {"Policy": pol(allow({"AWS": OTHER}))}}, "cross_account"),
        ("CreateQueue", {"queueName": "q"}, None),
        ("SendMessage", {"attributes": {"Policy": pol(allow("*"))}}, None),
    ],
)
def test_change_exposure(event: str, params: dict[str, Any], exposure: str | None) -> None:
    assert change_exposure(event, params, OWNER) == exposure


@pytest.mark.parametrize(
    ("attrs", "encryption"),
    [
        ({"KmsMasterKeyId": "alias/aws/sqs"}, "sse_kms"),
        ({"KmsMasterKeyId": "alias/k", "SqsManagedSseEnabled": "false"}, "sse_kms"),
        ({"SqsManagedSseEnabled": "true"}, "sse_sqs"),
        ({"SqsManagedSseEnabled": "false"}, "none"),
        ({"KmsMasterKeyId": ""}, "none"),
        ({"KmsMasterKeyId": "", "SqsManagedSseEnabled": "true"}, "sse_sqs"),
        ({"VisibilityTimeout": "30"}, None),
    ],
)
def test_change_encryption(attrs: dict[str, Any], encryption: str | None) -> None:
    assert change_encryption("SetQueueAttributes", {"attributes": attrs}) == encryption
    assert change_encryption("CreateQueue", {"queueName": "q", "attributes": attrs}) == encryption
    assert change_encryption("SendMessage", {"attributes": attrs}) is None


@pytest.mark.parametrize(
    ("identity", "account"),
    [
        ({"type": "IAMUser", "accountId": OTHER, "arn": f"arn:aws:iam::{OTHER}:user/a"}, OTHER),
        ({"type": "AssumedRole", "arn": f"arn:aws:sts::{OTHER}:assumed-role/r/s"}, OTHER),
        ({"type": "AWSService", "invokedBy": "sns.amazonaws.com"}, None),
        ({"invokedBy": "events.amazonaws.com"}, None),
        ({"type": "AWSAccount", "principalId": "AIDAX"}, "anonymous"),
        (None, "anonymous"),
    ],
)
def test_caller_account(identity: Any, account: str | None) -> None:
    assert access.caller_account(identity) == account


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
principal_like = st.one_of(
    st.just("*"),
    st.dictionaries(st.sampled_from(["AWS", "Service", "Federated", "CanonicalUser", "x"]), json_values, max_size=3),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(
    statements=st.lists(
        st.fixed_dictionaries(
            {"Effect": st.sampled_from(["Allow", "Deny", 3, None]), "Principal": principal_like},
            optional={"Condition": json_values, "NotPrincipal": json_values},
        ),
        max_size=4,
    ),
    as_text=st.booleans(),
)
def test_any_policy_classifies_without_raising(statements: list[dict[str, Any]], as_text: bool) -> None:
    doc: Any = {"Statement": statements}
    result = policy_exposure(json.dumps(doc) if as_text else doc, OWNER)
    assert result in access.EXPOSURES
    assert change_exposure("SetQueueAttributes", {"attributes": {"Policy": json.dumps(doc)}}, OWNER) in access.EXPOSURES


@settings(max_examples=200, deadline=None)
@given(params=json_values, event=st.sampled_from(sorted(access.POLICY_EVENTS)))
def test_any_parameters_classify_without_raising(params: Any, event: str) -> None:
    assert change_exposure(event, params, OWNER) in (*access.EXPOSURES, None)
    assert change_encryption(event, params) in (*access.ENCRYPTIONS, None)


@pytest.mark.parametrize(
    ("principal", "account"),
    [
        ("arn:aws:iam::111122223333:role/app", "111122223333"),
        ("arn:aws:sts::444455556666:assumed-role/app/i-1", "444455556666"),
        ("account:777788889999/AROAEXAMPLE", "777788889999"),
        ("account:777788889999/user/u1", "777788889999"),
        ("arn:aws:identitystore::123412341234:identitystore/d-1/user/u1", "123412341234"),
        ("sns.amazonaws.com", None),
        ("AIDAEXAMPLE", "anonymous"),
        ("account:notanaccount/x", "anonymous"),
        (None, "anonymous"),
        ("arn:aws:iam::" + "9" * 5000, "anonymous"),
    ],
)
def test_principal_caller_account(principal: str | None, account: str | None) -> None:
    assert access.principal_caller_account(principal) == account


def test_record_changes_memo_answers_as_the_functions_do() -> None:
    """record_changes remembers answers per record and per policy text: the same record asked for another
    owner, and the same policy on another account, get their own answers."""
    policy = json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "*"}]}
    )
    rec = json.dumps(
        {"requestParameters": {"queueUrl": "q", "attributes": {"Policy": policy, "KmsMasterKeyId": "alias/k"}}}
    ).encode()
    for _ in range(2):  # the second round is answered from the memos
        assert access.record_changes(rec, "SetQueueAttributes", "111122223333") == (access.ACCOUNT, access.SSE_KMS)
        assert access.record_changes(rec, "SetQueueAttributes", "444455556666") == (
            access.CROSS_ACCOUNT,
            access.SSE_KMS,
        )
        assert access.record_changes(rec, "CreateQueue", "111122223333") == (access.ACCOUNT, access.SSE_KMS)
        assert access.record_changes(rec, "RemovePermission", "111122223333") == (access.REMOVED, None)
        assert access.record_changes(b"{not json", "SetQueueAttributes", "111122223333") == (None, None)
        assert access.record_changes(memoryview(rec), "SetQueueAttributes", "111122223333") == (
            access.ACCOUNT,
            access.SSE_KMS,
        )


def test_large_policies_are_classified_but_not_remembered() -> None:
    big = json.dumps(
        {
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}],
            "Pad": "x" * (access._MEMO_BYTES + 1),
        }
    )
    assert access.policy_exposure(big, "111122223333") == access.PUBLIC
    assert (big, "111122223333") not in access._by_policy
