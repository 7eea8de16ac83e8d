"""The stack's secrets: generated at first start, never committed or defaulted, here and in compose."""

from __future__ import annotations

import re
import stat

import yaml

from devtools.airflow_stack import SECRET_NAMES, generate_secrets, main, read_env_file


def test_secrets_are_generated_once_private_and_random(tmp_path):
    path = tmp_path / "secrets.env"
    first = generate_secrets(path)
    assert set(first) == set(SECRET_NAMES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(first.values())) == len(SECRET_NAMES) and all(len(v) >= 32 for v in first.values())
    assert generate_secrets(path) == first == read_env_file(path)  # kept across starts
    assert generate_secrets(tmp_path / "other.env") != first


def test_missing_secrets_are_added_and_set_ones_kept(tmp_path, capsys):
    path = tmp_path / ".env"
    path.write_text("AIRFLOW_UID=1000\nPOSTGRES_PASSWORD=chosen-by-me\n")
    assert main(["secrets", str(path)]) == 0
    values = read_env_file(path)
    assert values["POSTGRES_PASSWORD"] == "chosen-by-me" and values["AIRFLOW_UID"] == "1000"
    assert set(SECRET_NAMES) <= set(values)
    assert "added AIRFLOW__API_AUTH__JWT_SECRET" in capsys.readouterr().out


def test_compose_defaults_no_secret_and_asks_for_the_ones_the_stack_generates(project_dir):
    text = (project_dir / "docker-compose.yaml").read_text()
    yaml.safe_load(text)  # valid YAML
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert set(SECRET_NAMES) <= required
    for name in SECRET_NAMES:
        assert not re.search(rf"\$\{{{name}:-", text), f"{name} has a default"
    assert "change-me" not in text and "_AIRFLOW_WWW_USER_PASSWORD" not in text
    assert not re.search(r"(PASSWORD|SECRET|KEY)\w*: *['\"]?airflow", text)
    assert "SIMPLE_AUTH_MANAGER_USERS: admin:admin,viewer:viewer" in text
