"""The job specs in pipelines/: they parse, their `flowprep extract` commands use only existing flags,
and they agree with the rest of the project (image tag, Ray version, documented submit command)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PIPELINES = REPO / "pipelines"
SPECS = ("ray-cluster.yaml", "rayjob.yaml", "slurm.sbatch")


def extract_commands(text: str) -> list[str]:
    """Every `flowprep extract ...` command in `text`: shell continuations joined, comment markers
    and the closing quote of a quoted command dropped."""
    logical = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in logical.splitlines():
        match = re.search(r"flowprep extract\s+--", line)  # a command, not prose naming it
        if match:
            commands.append(line[match.start() :].rstrip().rstrip('"'))
    return commands


def cli_flags() -> set[str]:
    from flowprep.cli import extract

    return {opt for param in extract.params for opt in param.opts if opt.startswith("--")}


def used_flags(command: str) -> set[str]:
    return set(re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", command))


def spec_commands(name: str) -> list[str]:
    text = (PIPELINES / name).read_text()
    if name == "rayjob.yaml":  # the entrypoint is a folded YAML string: take it as parsed
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        return [yaml.safe_load(text)["spec"]["entrypoint"], *extract_commands(comments)]
    return extract_commands(text)


def image_tag() -> str:
    """The CPU image tag of this version: '<version>-cpu'."""
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    return f"{version}-cpu"


@pytest.mark.parametrize("name", SPECS)
def test_flowprep_commands_use_existing_flags(name):
    commands = spec_commands(name)
    assert commands, f"{name}: no `flowprep extract` command found"
    known = cli_flags()
    for command in commands:
        flags = used_flags(command)
        assert flags - known == set(), (
            f"{name}: unknown flowprep extract flag(s) {sorted(flags - known)} in {command!r}"
        )
        assert {"--dataset", "--out", "--ray-address", "--workers"} <= flags, f"{name}: incomplete command {command!r}"


@pytest.mark.parametrize("name", SPECS)
def test_submit_command_is_documented(name):
    """Each spec's header names the one command that submits it; docs/scale-out.md shows the same."""
    header = (PIPELINES / name).read_text().split("\n\n")[0]
    match = re.search(r"^# Submit[^:\n]*:[ \t]*\n?#?[ \t]*(\S.*)$", header, re.MULTILINE)  # same or next line
    assert match, f"{name}: no '# Submit: <command>' line in its header"
    submit = match.group(1).split(' "')[0]  # ray exec's quoted job is checked by the flags test
    assert f"pipelines/{name}" in submit
    assert submit in (REPO / "docs" / "scale-out.md").read_text(), f"docs/scale-out.md does not show {submit!r}"


def test_ray_cluster_config_matches_ray_schema():
    import json

    import jsonschema
    import ray.autoscaler

    config = yaml.safe_load((PIPELINES / "ray-cluster.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # the launcher's own schema: no unknown or mistyped key
    assert config["head_node_type"] in config["available_node_types"]
    assert config["docker"]["image"].endswith(":" + image_tag())


def test_rayjob_manifest_is_a_complete_rayjob():
    spec = yaml.safe_load((PIPELINES / "rayjob.yaml").read_text())
    assert (spec["apiVersion"], spec["kind"]) == ("ray.io/v1", "RayJob")
    cluster = spec["spec"]["rayClusterSpec"]
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    assert cluster["rayVersion"] == pins["ray"], "the cluster's Ray must be the one flowprep is pinned to"
    pods = [cluster["headGroupSpec"]["template"]] + [group["template"] for group in cluster["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in pod["spec"]["containers"]}
    assert images == {f"ghcr.io/flowprep/flowprep:{image_tag()}"}
    for pod in pods:  # every mount names a declared volume
        declared = {v["name"] for v in pod["spec"].get("volumes", [])}
        mounts = {m["name"] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])}
        assert mounts <= declared


def test_slurm_script_is_valid_bash_with_directives_first():
    script = (PIPELINES / "slurm.sbatch").read_text()
    assert script.startswith("#!/bin/bash\n")
    lines = script.splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    late = [line for line in lines[first_command:] if line.startswith("#SBATCH")]
    assert not late, f"sbatch ignores #SBATCH lines after the first command: {late}"
    assert any(line.startswith("#SBATCH --nodes=") for line in lines)
    bash = shutil.which("bash")
    if bash:
        checked = subprocess.run([bash, "-n", str(PIPELINES / "slurm.sbatch")], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
