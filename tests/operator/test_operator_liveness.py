"""`hrw-operator --liveness URL` serves kopf's liveness endpoint, which the chart's livenessProbe reads."""

from __future__ import annotations

import httpx

from hrw_dev.controlplane import free_port
from tests.support.processes import ProcessFactory
from tests.support.waiting import wait_until


def test_the_liveness_endpoint_answers_while_the_operator_runs_and_not_after(processes: ProcessFactory, cluster,
                                                                            crds, namespace: str):
    url = f"http://127.0.0.1:{free_port()}/healthz"
    operator = processes.start("hrw-operator", "--namespace", namespace, "--kubeconfig",
                               str(cluster.kubeconfig_path), "--liveness", url)
    operator.wait_for_log(r"operator\.started", timeout=30)
    answer = wait_until(lambda: httpx.get(url, timeout=2), timeout=30, ignore=(httpx.HTTPError,),
                        message="the liveness endpoint answers")
    assert answer.status_code == 200

    operator.stop()
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the liveness endpoint still answers after the operator stopped")
