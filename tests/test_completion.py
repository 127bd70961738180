"""Shell completion with real processes: click's protocol driven through environment
variables as click documents (`_PROMENADE_COMPLETE=bash_complete`, COMP_WORDS,
COMP_CWORD), and the bash script `promenade completion bash` prints, sourced in a real
bash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scripts import PROMENADE

CONFIG = """\
services:
  api: {command: sleep 1, profiles: [debug]}
  admin: {command: sleep 1}
  worker: {command: sleep 1}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "promenade.yaml").write_text(CONFIG)
    (tmp_path / "src").mkdir()
    return tmp_path


def environ(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMP_", "_PROMENADE"))}
    env.update(HOME=str(project), **extra)
    return env


def complete(project: Path, line: str, shell: str = "bash", cwd: Path | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """What `promenade` answers when the shell asks for completions of `line` (the word
    being completed is the last one; a trailing space starts a new empty word)."""
    words = line.split(" ")
    # bash and zsh give the index of the word being completed, fish the word itself
    cword = words[-1] if shell == "fish" else str(len(words) - 1)
    env = environ(project, _PROMENADE_COMPLETE=f"{shell}_complete",
                  COMP_WORDS=" ".join(words), COMP_CWORD=cword)
    return subprocess.run(PROMENADE, cwd=cwd or project, env=env, capture_output=True,
                          text=True, timeout=60)


def bash_names(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize("command", ["start", "stop", "restart", "logs", "status", "wait",
                                     "run"])
def test_service_names_after_each_command(project: Path, command: str) -> None:
    assert bash_names(complete(project, f"promenade {command} ")) == [
        "api", "admin", "worker"]


def test_the_typed_prefix_and_names_already_given(project: Path) -> None:
    assert bash_names(complete(project, "promenade stop a")) == ["api", "admin"]
    assert bash_names(complete(project, "promenade logs api ")) == ["admin", "worker"]
    assert bash_names(complete(project, "promenade run api -- ")) == []


def test_profile_names_after_start_profile(project: Path) -> None:
    (project / "promenade.yaml").write_text(
        CONFIG + "  docs: {command: sleep 1, profiles: [docs, debug]}\n")
    assert bash_names(complete(project, "promenade start --profile ")) == ["debug", "docs"]
    assert bash_names(complete(project, "promenade start --profile do")) == ["docs"]


def test_from_a_subfolder_and_with_c(project: Path, tmp_path: Path) -> None:
    assert bash_names(complete(project, "promenade start w", cwd=project / "src")) == [
        "worker"]
    other = tmp_path / "other.yaml"
    other.write_text("services:\n  db: {command: sleep 1}\n")
    assert bash_names(complete(project, f"promenade restart -c {other} ")) == ["db"]


@pytest.mark.parametrize("text", [None, "services: [\n", "services:\n  api: {x: 1}\n"])
def test_no_or_a_broken_config_completes_quietly(project: Path, text: str | None) -> None:
    if text is None:
        (project / "promenade.yaml").unlink()
    else:
        (project / "promenade.yaml").write_text(text)
    result = complete(project, "promenade stop ")
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")


def test_zsh_and_fish_protocols(project: Path) -> None:
    zsh = complete(project, "promenade stop w", shell="zsh")
    assert zsh.stdout.splitlines() == ["plain", "worker", "_"], zsh.stderr
    fish = complete(project, "promenade stop w", shell="fish")
    assert fish.stdout.splitlines() == ["plain,worker"], fish.stderr


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "_PROMENADE_COMPLETE=bash_complete"),
    ("zsh", "#compdef promenade"),
    ("fish", "_PROMENADE_COMPLETE=fish_complete"),
])
def test_completion_prints_the_script(project: Path, shell: str, marker: str) -> None:
    result = subprocess.run([*PROMENADE, "completion", shell], cwd=project,
                            env=environ(project), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_an_unknown_shell_is_a_usage_error(project: Path) -> None:
    result = subprocess.run([*PROMENADE, "completion", "tcsh"], env=environ(project),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def test_the_bash_script_completes_in_a_real_bash(project: Path) -> None:
    """Load what `promenade completion bash` prints, as the README says, and call the
    completion function as bash calls it on <TAB> (with the command's name)."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "promenade").exists():
        pytest.skip("the promenade script is not installed beside this Python")
    script = ('eval "$(promenade completion bash)"; COMP_WORDS=(promenade restart a); '
              'COMP_CWORD=2; _promenade_completion promenade; printf "%s\\n" "${COMPREPLY[@]}"')
    env = environ(project, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "--norc", "-c", script], cwd=project / "src", env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == ["api", "admin"], result.stderr
