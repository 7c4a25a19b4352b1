"""Bad manifests are refused by `kubectl apply` at once, with a message that names the field or rule.

Each case is a manifest a person could plausibly write, applied with the real kubectl against
the real apiserver with hrw's CRDs; the assertion is on kubectl's stderr, because that is what
the person reads. The schema (enums, patterns, bounds, list types) and the CEL rules in
crds/*.yaml do the refusing; nothing of hrw needs to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo

Cluster = ControlPlane | ExistingCluster


@dataclass(frozen=True)
class Bad:
    manifest: str
    says: tuple[str, ...]  # substrings kubectl's stderr must contain


RUNBOOK = """
apiVersion: hrw.dev/v1alpha1
kind: Runbook
metadata: {{name: bad}}
spec:
{spec}
"""
ASSET = """
apiVersion: hrw.dev/v1alpha1
kind: Asset
metadata: {{name: bad}}
spec:
{spec}
"""
WORKER_GROUP = """
apiVersion: hrw.dev/v1alpha1
kind: WorkerGroup
metadata: {{name: {name}}}
spec:
{spec}
"""
JOB = """
apiVersion: hrw.dev/v1alpha1
kind: RunbookJob
metadata: {{name: {name}}}
spec:
  runbookRef: {{name: hello}}
  workerGroup: datacenter-a
{spec}
"""
SCHEDULE = """
apiVersion: hrw.dev/v1alpha1
kind: RunbookSchedule
metadata: {{name: {name}}}
spec:
{spec}
"""
TEMPLATE = "  jobTemplate: {runbookRef: {name: hello}, workerGroup: datacenter-a}"

CASES: dict[str, Bad] = {
    "job_name_longer_than_a_label_value": Bad(
        JOB.format(name="j" * 64, spec=""),
        ("metadata.name of a RunbookJob must be at most 63 characters",),
    ),
    # Runbook
    "runbook_with_unknown_interpreter": Bad(
        RUNBOOK.format(spec="  interpreter: perl\n  content: print 1"),
        ("spec.interpreter", "Unsupported value", '"perl"'),
    ),
    "runbook_with_content_and_content_from": Bad(
        RUNBOOK.format(spec=(
            "  interpreter: bash\n  content: echo hi\n"
            "  contentFrom: {configMapKeyRef: {name: scripts, key: hi.sh}}"
        )),
        ("exactly one of spec.content and spec.contentFrom must be set",),
    ),
    "runbook_with_neither_content_nor_content_from": Bad(
        RUNBOOK.format(spec="  interpreter: bash"),
        ("exactly one of spec.content and spec.contentFrom must be set",),
    ),
    "runbook_with_badly_formed_parameter_name": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  parameters: [{name: 1st-name}]"),
        ("spec.parameters[0].name", "should match"),
    ),
    "runbook_with_duplicate_parameter_names": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  parameters: [{name: who}, {name: who}]"),
        ("spec.parameters[1]", "Duplicate value"),
    ),
    "runbook_with_unknown_parameter_type": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  parameters: [{name: who, type: date}]"),
        ("spec.parameters[0].type", "Unsupported value"),
    ),
    "runbook_with_pattern_on_an_integer_parameter": Bad(
        RUNBOOK.format(spec=(
            "  interpreter: bash\n  content: echo\n  parameters: [{name: size, type: integer, pattern: '^1$'}]"
        )),
        ("spec.parameters[0].pattern", "pattern is allowed only for parameters of type string"),
    ),
    "runbook_with_badly_formed_asset_name": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  assets: [Not_A_Name]"),
        ("spec.assets[0]", "should match"),
    ),
    "runbook_with_duplicate_asset_names": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  assets: [greeting, greeting]"),
        ("spec.assets[1]", "Duplicate value"),
    ),
    "runbook_with_zero_timeout": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  timeoutSeconds: 0"),
        ("spec.timeoutSeconds", "greater than or equal to 1"),
    ),
    "runbook_with_content_from_without_key": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  contentFrom: {configMapKeyRef: {name: scripts}}"),
        ("spec.contentFrom.configMapKeyRef.key", "Required value"),
    ),
    # Asset
    "asset_of_unknown_type": Bad(
        ASSET.format(spec="  type: Password\n  value: x"),
        ("spec.type", "Unsupported value"),
    ),
    "credential_without_password_from": Bad(
        ASSET.format(spec="  type: Credential\n  username: admin"),
        ("spec.passwordFrom", "a Credential needs spec.passwordFrom"),
    ),
    "credential_with_a_plain_value": Bad(
        ASSET.format(spec=(
            "  type: Credential\n  username: admin\n  value: hunter2\n"
            "  passwordFrom: {secretKeyRef: {name: db, key: password}}"
        )),
        ("a Credential has only spec.username and spec.passwordFrom",),
    ),
    "variable_with_value_and_value_from": Bad(
        ASSET.format(spec="  type: Variable\n  value: x\n  valueFrom: {secretKeyRef: {name: s, key: k}}"),
        ("a Variable needs exactly one of spec.value and spec.valueFrom",),
    ),
    "variable_with_a_username": Bad(
        ASSET.format(spec="  type: Variable\n  value: x\n  username: admin"),
        ("a Variable has only spec.value or spec.valueFrom",),
    ),
    "certificate_without_certificate_from": Bad(
        ASSET.format(spec="  type: Certificate"),
        ("spec.certificateFrom", "a Certificate needs spec.certificateFrom"),
    ),
    "connection_with_empty_fields": Bad(
        ASSET.format(spec="  type: Connection\n  fields: []"),
        ("spec.fields", "a Connection needs at least one entry in spec.fields"),
    ),
    "connection_field_with_value_and_value_from": Bad(
        ASSET.format(spec=(
            "  type: Connection\n  fields:\n"
            "    - {name: host, value: db.example, valueFrom: {secretKeyRef: {name: s, key: host}}}"
        )),
        ("spec.fields[0]", "each Connection field needs exactly one of value and valueFrom"),
    ),
    "connection_with_duplicate_field_names": Bad(
        ASSET.format(spec="  type: Connection\n  fields: [{name: host, value: a}, {name: host, value: b}]"),
        ("spec.fields[1]", "Duplicate value"),
    ),
    # WorkerGroup
    "worker_group_requiring_signatures_without_trusted_keys": Bad(
        WORKER_GROUP.format(name="dc", spec="  requireSignedRunbooks: true"),
        ("spec.trustedKeys", "requireSignedRunbooks needs at least one entry in spec.trustedKeys"),
    ),
    "worker_group_with_a_fencing_margin_not_below_its_lease": Bad(
        WORKER_GROUP.format(name="dc", spec="  leaseDurationSeconds: 20\n  selfFencingMarginSeconds: 20"),
        ("spec.selfFencingMarginSeconds", "selfFencingMarginSeconds must be less than leaseDurationSeconds"),
    ),
    "worker_group_with_a_fencing_margin_not_below_the_default_lease": Bad(
        WORKER_GROUP.format(name="dc", spec="  selfFencingMarginSeconds: 30"),
        ("spec.selfFencingMarginSeconds", "selfFencingMarginSeconds must be less than leaseDurationSeconds"),
    ),
    "worker_group_whose_credential_overlap_outlasts_half_the_rotation_period": Bad(
        WORKER_GROUP.format(name="dc", spec="  credentialRotation: {periodSeconds: 60}"),  # overlap 60 by default
        ("spec.credentialRotation.overlapSeconds", "overlapSeconds must be less than half of periodSeconds"),
    ),
    "worker_group_rotating_credentials_too_often": Bad(
        WORKER_GROUP.format(name="dc", spec="  credentialRotation: {periodSeconds: 10, overlapSeconds: 1}"),
        ("spec.credentialRotation.periodSeconds", "greater than or equal to 30"),
    ),
    "worker_group_with_a_registration_opt_in_that_is_not_a_boolean": Bad(
        WORKER_GROUP.format(name="dc", spec="  registration: {groupToken: sometimes}"),
        ("spec.registration.groupToken", "boolean"),
    ),
    "worker_group_with_a_minimum_agent_version_that_is_not_release_numbers": Bad(
        WORKER_GROUP.format(name="dc", spec="  minAgentVersion: latest"),
        ("spec.minAgentVersion", "should match"),
    ),
    "worker_group_with_duplicate_key_ids": Bad(
        WORKER_GROUP.format(name="dc", spec=(
            "  trustedKeys: [{keyId: k1, publicKey: QUJD}, {keyId: k1, publicKey: REVG}]"
        )),
        ("spec.trustedKeys[1]", "Duplicate value"),
    ),
    "worker_group_name_longer_than_a_dns_label": Bad(
        WORKER_GROUP.format(name="d" * 64, spec="  maxJobsPerWorker: 1"),
        ("must be a DNS-1123 label",),
    ),
    "worker_group_name_with_dots": Bad(
        WORKER_GROUP.format(name="datacenter.a", spec="  maxJobsPerWorker: 1"),
        ("must be a DNS-1123 label",),
    ),
    "worker_group_with_unknown_interpreter": Bad(
        WORKER_GROUP.format(name="dc", spec="  interpreters: [bash, ruby]"),
        ("spec.interpreters[1]", "Unsupported value"),
    ),
    "worker_group_with_zero_jobs_per_worker": Bad(
        WORKER_GROUP.format(name="dc", spec="  maxJobsPerWorker: 0"),
        ("spec.maxJobsPerWorker", "greater than or equal to 1"),
    ),
    "worker_group_with_a_five_second_lease": Bad(
        WORKER_GROUP.format(name="dc", spec="  leaseDurationSeconds: 5"),
        ("spec.leaseDurationSeconds", "greater than or equal to 10"),
    ),
    "worker_group_with_a_negative_default_job_ttl": Bad(
        WORKER_GROUP.format(name="dc", spec="  jobDefaults: {ttlSecondsAfterFinished: -1}"),
        ("spec.jobDefaults.ttlSecondsAfterFinished", "greater than or equal to 0"),
    ),
    "worker_group_with_an_unknown_job_default": Bad(
        WORKER_GROUP.format(name="dc", spec="  jobDefaults: {ttlSeconds: 60}"),
        ('unknown field "spec.jobDefaults.ttlSeconds"',),
    ),
    "worker_group_running_its_jobs_as_root_without_allow_root": Bad(
        WORKER_GROUP.format(name="dc", spec="  runAs: {user: root}"),
        ("spec.runAs.user", "spec.runAs names root: set spec.allowRoot: true"),
    ),
    "worker_group_listing_root_in_allowed_run_as": Bad(
        WORKER_GROUP.format(name="dc", spec="  allowedRunAs: [{user: backup}, {user: root}]"),
        ("spec.allowedRunAs", "spec.allowedRunAs names root: set spec.allowRoot: true instead"),
    ),
    "worker_group_run_as_without_a_user": Bad(
        WORKER_GROUP.format(name="dc", spec="  runAs: {group: wheel}"),
        ("spec.runAs.user", "Required value"),
    ),
    "worker_group_run_as_a_name_that_is_no_user_name": Bad(
        WORKER_GROUP.format(name="dc", spec="  runAs: {user: 'Admin User'}"),
        ("spec.runAs.user", "should match"),
    ),
    "runbook_asking_to_run_as_a_uid": Bad(
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  runAs: {user: '0'}"),
        ("spec.runAs.user", "should match"),
    ),
    # RunbookJob
    "job_with_zero_timeout": Bad(
        JOB.format(name="bad", spec="  timeoutSeconds: 0"),
        ("spec.timeoutSeconds", "greater than or equal to 1"),
    ),
    "job_with_a_timeout_over_a_week": Bad(
        JOB.format(name="bad", spec="  timeoutSeconds: 604801"),
        ("spec.timeoutSeconds", "less than or equal to 604800"),
    ),
    "job_with_zero_max_attempts": Bad(
        JOB.format(name="bad", spec="  retryPolicy: {maxAttempts: 0}"),
        ("spec.retryPolicy.maxAttempts", "greater than or equal to 1"),
    ),
    "job_with_unknown_retry_on": Bad(
        JOB.format(name="bad", spec="  retryPolicy: {retryOn: [WorkerLost, Timeout]}"),
        ("spec.retryPolicy.retryOn[1]", "Unsupported value"),
    ),
    "job_with_negative_ttl": Bad(
        JOB.format(name="bad", spec="  ttlSecondsAfterFinished: -1"),
        ("spec.ttlSecondsAfterFinished", "greater than or equal to 0"),
    ),
    "job_with_worker_group_that_is_not_a_dns_label": Bad(
        JOB.format(name="bad", spec="").replace("workerGroup: datacenter-a", "workerGroup: Datacenter.A"),
        ("spec.workerGroup", "should match"),
    ),
    "job_without_runbook_ref": Bad(
        JOB.format(name="bad", spec="").replace("  runbookRef: {name: hello}\n", ""),
        ("spec.runbookRef", "Required value"),
    ),
    "job_with_parameters_that_are_not_an_object": Bad(
        JOB.format(name="bad", spec="  parameters: [World]"),
        ("spec.parameters", "must be of type object"),
    ),
    # RunbookSchedule
    "schedule_with_four_cron_fields": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "*/5 * * *"\n{TEMPLATE}'),
        ("spec.schedule", "must be a cron expression of 5 fields"),
    ),
    "schedule_with_words_for_a_cron_expression": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "every day at noon"\n{TEMPLATE}'),
        ("spec.schedule", "must be a cron expression of 5 fields"),
    ),
    "schedule_with_an_unknown_macro": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "@fortnightly"\n{TEMPLATE}'),
        ("spec.schedule", "must be a cron expression of 5 fields"),
    ),
    "schedule_without_schedule": Bad(
        SCHEDULE.format(name="bad", spec=TEMPLATE),
        ("spec.schedule", "Required value"),
    ),
    "schedule_without_job_template": Bad(
        SCHEDULE.format(name="bad", spec='  schedule: "@daily"'),
        ("spec.jobTemplate", "Required value"),
    ),
    "schedule_whose_template_has_no_worker_group": Bad(
        SCHEDULE.format(name="bad", spec='  schedule: "@daily"\n  jobTemplate: {runbookRef: {name: hello}}'),
        ("spec.jobTemplate.workerGroup", "Required value"),
    ),
    "schedule_whose_template_cancels": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "@daily"\n{TEMPLATE[:-1]}, cancel: true}}'),
        ("spec.jobTemplate.cancel", "unknown field"),
    ),
    "schedule_with_unknown_concurrency_policy": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "@daily"\n  concurrencyPolicy: Queue\n{TEMPLATE}'),
        ("spec.concurrencyPolicy", "Unsupported value"),
    ),
    "schedule_with_a_time_zone_that_is_not_a_name": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "@daily"\n  timeZone: "+02:00"\n{TEMPLATE}'),
        ("spec.timeZone", "should match"),
    ),
    "schedule_with_negative_history_limit": Bad(
        SCHEDULE.format(name="bad", spec=f'  schedule: "@daily"\n  failedJobsHistoryLimit: -1\n{TEMPLATE}'),
        ("spec.failedJobsHistoryLimit", "greater than or equal to 0"),
    ),
    "schedule_name_too_long_for_its_job_names": Bad(
        SCHEDULE.format(name="s" * 53, spec=f'  schedule: "@daily"\n{TEMPLATE}'),
        ("metadata.name of a RunbookSchedule must be at most 52 characters",),
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_manifest_is_refused_with_a_message_naming_the_field(
    cluster: Cluster, crds: list[CrdInfo], namespace: str, case: str
) -> None:
    bad = CASES[case]
    result = cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=bad.manifest)
    assert result.returncode != 0, f"{case} was accepted:\n{result.stdout}"
    for text in bad.says:
        assert text in result.stderr, f"{case}: {text!r} not in kubectl's stderr:\n{result.stderr}"


def test_each_bad_manifest_differs_from_a_good_one_only_in_its_fault(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    """The templates themselves are valid, so each refusal above is for the fault it names."""
    good = [
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  parameters: [{name: who}]\n  assets: [greeting]"),
        ASSET.format(spec="  type: Variable\n  value: x").replace("name: bad", "name: variable"),
        ASSET.format(spec="  type: Credential\n  username: admin\n  passwordFrom: {secretKeyRef: {name: db, key: pw}}")
        .replace("name: bad", "name: credential"),
        ASSET.format(spec="  type: Certificate\n  certificateFrom: {secretRef: {name: tls}}")
        .replace("name: bad", "name: certificate"),
        ASSET.format(spec="  type: Connection\n  fields: [{name: host, value: a}, {name: pw, valueFrom: "
                          "{secretKeyRef: {name: s, key: pw}}}]").replace("name: bad", "name: connection"),
        WORKER_GROUP.format(
            name="dc", spec="  requireSignedRunbooks: true\n  trustedKeys: [{keyId: k1, publicKey: QUJD}]"
        ),
        WORKER_GROUP.format(name="d" * 63, spec="  maxJobsPerWorker: 256"),
        WORKER_GROUP.format(name="fenced", spec="  leaseDurationSeconds: 20\n  selfFencingMarginSeconds: 19"),
        WORKER_GROUP.format(name="fenced-default-lease", spec="  selfFencingMarginSeconds: 29"),
        WORKER_GROUP.format(name="rotating", spec=(
            "  registration: {groupToken: true}\n  credentialRotation: {periodSeconds: 86400, overlapSeconds: 300}")),
        WORKER_GROUP.format(name="admins", spec=(
            "  allowRoot: true\n  runAs: {user: root}\n  allowedRunAs: [{user: backup, group: disk}, {user: root}]")),
        WORKER_GROUP.format(name="ops", spec="  runAs: {user: hrw-job}\n  allowedRunAs: [{user: backup}]"),
        RUNBOOK.format(spec="  interpreter: bash\n  content: echo\n  runAs: {user: root, group: wheel}")
        .replace("name: bad", "name: as-root"),
        JOB.format(name="j" * 63, spec=""),
        JOB.format(name="bad", spec="  timeoutSeconds: 604800\n"
                                    "  retryPolicy: {maxAttempts: 10, retryOn: [WorkerLost, Failed]}\n"
                                    "  ttlSecondsAfterFinished: 0\n  parameters: {who: World}"),
        SCHEDULE.format(name="s" * 52, spec=f'  schedule: "*/5 * * * *"\n{TEMPLATE}'),
        SCHEDULE.format(name="weekdays", spec=f'  schedule: " 30 2 * JAN-DEC MON-FRI "\n  timeZone: Europe/Berlin\n'
                                              f'  concurrencyPolicy: Forbid\n  failedJobsHistoryLimit: 0\n{TEMPLATE}'),
        SCHEDULE.format(name="daily", spec=f'  schedule: "@daily"\n  timeZone: America/Argentina/Buenos_Aires\n'
                                           f'{TEMPLATE}'),
    ]
    for manifest in good:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
