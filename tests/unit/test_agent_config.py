"""The agent reads one YAML file plus flags; flags win; mistakes are named, not tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hrw_agent.config import DEFAULT_STATE_DIR, ConfigError, default_worker_name, load

YAML = """
proxyUrl: https://hrw.example.com
caFile: /etc/hrw-agent/ca.crt
namespace: ops
group: datacenter-a
worker: web-01
registrationTokenFile: /etc/hrw-agent/token
stateDir: /srv/hrw
maxConcurrentJobs: 4
shutdownGraceSeconds: 30
logFormat: json
interpreterPaths:
  python3: /opt/py/bin/python3
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_yaml_keys_are_read(tmp_path):
    config = load(["--config", str(_write(tmp_path, YAML))])
    assert config.proxy_url == "https://hrw.example.com"
    assert config.ca_file == Path("/etc/hrw-agent/ca.crt")
    assert (config.namespace, config.group, config.worker) == ("ops", "datacenter-a", "web-01")
    assert config.registration_token_file == Path("/etc/hrw-agent/token")
    assert config.state_dir == Path("/srv/hrw")
    assert config.credential_path == Path("/srv/hrw/credential")
    assert config.max_concurrent_jobs == 4
    assert config.shutdown_grace_seconds == 30.0
    assert config.log_format == "json"
    assert config.interpreter_paths == {"python3": "/opt/py/bin/python3"}


def test_flags_override_yaml(tmp_path):
    config = load(["--config", str(_write(tmp_path, YAML)), "--worker", "web-02", "--max-concurrent-jobs", "1",
                      "--state-dir", str(tmp_path)])
    assert config.worker == "web-02"
    assert config.max_concurrent_jobs == 1
    assert config.state_dir == tmp_path


def test_flags_alone_suffice_and_defaults_apply():
    config = load(["--proxy-url", "https://p:8443", "--namespace", "ns", "--group", "g"])
    assert config.worker == default_worker_name()
    assert config.state_dir == DEFAULT_STATE_DIR
    assert config.max_concurrent_jobs is None
    assert config.shutdown_grace_seconds == 60.0
    assert config.log_format == "text"


def test_default_worker_name_is_a_dns_label():
    name = default_worker_name()
    assert name == name.lower() and "." not in name and 0 < len(name) <= 63


@pytest.mark.parametrize(("argv", "words"), [
    (["--namespace", "ns", "--group", "g"], "proxyUrl"),
    (["--proxy-url", "http://plain", "--namespace", "ns", "--group", "g"], "https"),
    (["--proxy-url", "https://p", "--namespace", "ns", "--group", "Bad_Group"], "group must be a DNS label"),
    (["--proxy-url", "https://p", "--namespace", "ns", "--group", "g", "--max-concurrent-jobs", "0"],
     "max_concurrent_jobs"),
    (["--proxy-url", "https://p", "--namespace", "ns", "--group", "g", "--log-format", "xml"], "logFormat"),
])
def test_invalid_settings_are_named(argv, words):
    with pytest.raises(ConfigError, match=words):
        load(argv)


def test_unknown_yaml_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="proxyURL"):
        load(["--config", str(_write(tmp_path, "proxyURL: https://x\nnamespace: n\ngroup: g\n"))])


def test_example_config_in_the_repo_parses():
    example = Path(__file__).resolve().parents[2] / "deploy" / "agent.example.yaml"
    config = load(["--config", str(example)])
    assert config.proxy_url.startswith("https://")
